"""Scrubbing: making a recording safe to commit before (or after) it is written.

Strategy: a scrub is an *entry hook*, a function that sees each entry of a
session and returns it, changed, or ``None`` to drop it. The recorder calls a hook
on every entry before writing it; :func:`scrub_session` applies one to a session
already recorded. :func:`mask_text` builds the common hook: it replaces every match
of some regular expressions, in every text a person said, with a mask.

Which texts: in a server message, every string under a ``transcript``,
``utterance`` or ``text`` key (a ``Turn``'s transcript and utterance, each word's
text, a ``SpeakerRevision``'s words, an ``LLMGatewayResponse``'s transcript) and
every string inside an ``LLMGatewayResponse``'s ``data``; a ``server_raw`` frame
is masked whole. (``redact_pii`` on the service redacts final turns only:
partials carry the raw text, so a recording needs this either way.) Each text is
masked on its own: a pattern that spans words masks the transcript, while the
words are checked one at a time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from ._session import Entry, RecordedSession, ServerMessage, ServerRaw

__all__ = ["EntryHook", "mask_text", "scrub_session"]

EntryHook = Callable[[Entry], "Entry | None"]
"""Sees one entry of a session; returns it (changed or not), or ``None`` to drop it
(what ``SessionWriter(hook=...)`` and ``record(hook=...)`` take)."""

_TEXT_KEYS: Final = frozenset({"transcript", "utterance", "text"})


def _compile(patterns: Iterable[str | re.Pattern[str]]) -> list[re.Pattern[str]]:
    compiled = []
    for pattern in patterns:
        if isinstance(pattern, re.Pattern):
            compiled.append(pattern)
        elif isinstance(pattern, str):
            try:
                compiled.append(re.compile(pattern))
            except re.error as exc:
                raise ValueError(f"not a regular expression: {pattern!r} ({exc})") from None
        else:
            raise TypeError(f"a pattern is a str or a compiled regex, got {type(pattern).__name__}")
    return compiled


def mask_text(patterns: Iterable[str | re.Pattern[str]], *, mask: str = "***") -> EntryHook:
    """The hook that replaces each match of ``patterns`` with ``mask`` in the spoken texts.

    ``patterns`` are regular expressions (strings or compiled). Raises
    ``ValueError`` for an invalid one, for an empty list, for a pattern that
    matches the empty string (it would mask between every letter), and for a mask
    that a pattern matches (the result would not be free of matches).
    """
    compiled = _compile(patterns)
    if not compiled:
        raise ValueError("give at least one pattern to mask")
    for pattern in compiled:
        if pattern.fullmatch(""):
            raise ValueError(f"the pattern {pattern.pattern!r} matches the empty string")
        if pattern.search(mask):
            raise ValueError(f"the mask {mask!r} matches the pattern {pattern.pattern!r}")

    def masked(text: str) -> str:
        for pattern in compiled:
            text = pattern.sub(mask, text)
        return text

    def walk(value: Any, spoken: bool) -> Any:
        if isinstance(value, str):
            return masked(value) if spoken else value
        if isinstance(value, Mapping):
            return {key: walk(item, spoken or key in _TEXT_KEYS) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [walk(item, spoken) for item in value]
        return value

    def hook(entry: Entry) -> Entry | None:
        if isinstance(entry, ServerRaw):
            return ServerRaw(entry.t, masked(entry.text))
        if isinstance(entry, ServerMessage):
            message = entry.message
            scrubbed = {
                key: walk(value, key in _TEXT_KEYS or _is_llm_data(message, key))
                for key, value in message.items()
            }
            return ServerMessage(entry.t, scrubbed)
        return entry

    return hook


def _is_llm_data(message: Mapping[str, Any], key: str) -> bool:
    return key == "data" and message.get("type") == "LLMGatewayResponse"


def scrub_session(session: RecordedSession, hook: EntryHook) -> RecordedSession:
    """``session`` with ``hook`` applied to every entry (those it returns ``None`` for dropped)."""
    entries = []
    for entry in session.entries:
        kept = hook(entry)
        if kept is not None:
            entries.append(kept)
    return RecordedSession(session.header, entries, session.path)
