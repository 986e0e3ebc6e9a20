"""Fault injection: a replay that breaks on purpose, to test a client's error paths.

Strategy: faults act on the stream of actions a replay connection produces, not
on the recording. ``FaultStage`` sits between the replay and the I/O layer: it
delays each action, counts the server messages that pass, and at the configured
count inserts a raw frame, an ``Error`` and its close, or a dropped connection.
It reads no clock: callers pass ``now`` (seconds since the connection opened).
"""

from __future__ import annotations

import json
import math
from collections import deque
from typing import Any, Final, final

import attrs

from aai_proto import close_code_meaning

from ._actions import Abort, Action, CloseConnection, Send, close_reason

__all__ = ["ERROR_CLOSE_REASON", "FaultStage", "Faults"]

ERROR_CLOSE_REASON: Final = "See Error message for details"

# Close codes an endpoint may send (RFC 6455 section 7.4): not 1004-1006 or 1015.
_SENDABLE: Final = frozenset({1000, 1001, 1002, 1003, *range(1007, 1015)})


def _count(_: Any, a: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (type(value) is not int or value < 0):
        raise ValueError(f"{a.name} must be a whole number >= 0, got {value!r}")


def _seconds(_: Any, a: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{a.name} must be a number of seconds >= 0, got {value!r}")


def _error_code(_: Any, a: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if type(value) is not int or not (value in _SENDABLE or 3000 <= value <= 4999):
        raise ValueError(
            f"{a.name} must be a close code a server can send (1000-1003, 1007-1014, "
            f"3000-4999), got {value!r}"
        )


def _raw(_: Any, a: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and type(value) not in (str, bytes):
        raise ValueError(f"{a.name} must be str (a text frame) or bytes (a binary frame)")


def _text(_: Any, a: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and type(value) is not str:
        raise ValueError(f"{a.name} must be a string, got {value!r}")


@final
@attrs.frozen(kw_only=True)
class Faults:
    """Ways to break a replay on purpose. The default breaks nothing.

    Counts are of server messages sent so far on the connection (``Begin`` is the
    first); ``0`` means at once, before ``Begin``. When several faults fall on the
    same count, the raw frame goes first, then the error, then the drop.

    - ``drop_after_messages``/``drop_after_seconds``: drop the connection without
      a close frame (the client sees 1006) after that many messages, or that many
      seconds after it opened, whichever comes first.
    - ``delay``: hold every server message (and the close) back this many seconds.
    - ``error_code``: after ``error_after`` messages, send ``{"type": "Error",
      "error_code": N, "error": error_text}`` and close with code N, as the service
      does; ``error_text`` defaults to a description of the code.
    - ``raw``: after ``raw_after`` messages, send this frame verbatim (``str`` as a
      text frame, ``bytes`` as a binary one).
    """

    drop_after_messages: int | None = attrs.field(default=None, validator=_count)
    drop_after_seconds: float | None = attrs.field(default=None, validator=_seconds)
    delay: float = attrs.field(default=0.0, validator=_seconds)
    error_code: int | None = attrs.field(default=None, validator=_error_code)
    error_after: int = attrs.field(default=1, validator=_count)
    error_text: str | None = attrs.field(default=None, validator=_text)
    raw: str | bytes | None = attrs.field(default=None, validator=_raw)
    raw_after: int = attrs.field(default=1, validator=_count)

    @property
    def active(self) -> bool:
        """Whether any fault is configured."""
        return self != Faults()

    def error_message(self) -> str | None:
        """The text of the injected ``Error`` message, if an error is configured."""
        if self.error_code is None:
            return None
        text = self.error_text
        if text is None:
            text = f"Injected error: {close_code_meaning(self.error_code)}"
        return json.dumps(
            {"type": "Error", "error_code": self.error_code, "error": text},
            separators=(",", ":"),
            ensure_ascii=False,
        )


@final
class FaultStage:
    """Applies :class:`Faults` to the actions of one connection.

    :meth:`push` takes each action the replay produces, with the time it was
    produced; :meth:`pop` returns the actions due by ``now``, faults included;
    :meth:`next_deadline` says when the next one falls due. After a close or an
    abort nothing more comes out.
    """

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._queue: deque[tuple[float, Action]] = deque()
        self._messages = 0
        self._raw_pending = faults.raw is not None
        self._error_pending = faults.error_code is not None
        self._finished = False

    @property
    def finished(self) -> bool:
        """Whether a close or an abort came out: the connection is over."""
        return self._finished

    @property
    def messages_sent(self) -> int:
        """Server messages that came out so far (injected ones not counted)."""
        return self._messages

    def push(self, action: Action, now: float) -> None:
        """Queue ``action``, produced at ``now``; it falls due ``delay`` seconds later."""
        if not self._finished:
            self._queue.append((now + self.faults.delay, action))

    def next_deadline(self) -> float | None:
        """When :meth:`pop` next has something to return, if nothing else happens."""
        if self._finished:
            return None
        due = self._queue[0][0] if self._queue else None
        drop = self.faults.drop_after_seconds
        if drop is not None and (due is None or drop < due):
            due = drop
        return due

    def pop(self, now: float) -> list[Action]:
        """Return the actions due by ``now``, in order."""
        return [action for _, action in self.pop_timed(now)]

    def pop_timed(self, now: float) -> list[tuple[float, Action]]:
        """Like :meth:`pop`, each action with the time it fell due (``now`` for faults)."""
        out: list[tuple[float, Action]] = []
        if self._finished:
            return out
        self._inject(out, now)
        drop_at = self.faults.drop_after_seconds
        while not self._finished:
            due_drop = drop_at is not None and drop_at <= now
            if self._queue and self._queue[0][0] <= now:
                due, action = self._queue[0]
                if due_drop and drop_at is not None and drop_at < due:
                    self._finish(out, Abort(), drop_at)
                    break
                self._queue.popleft()
                if isinstance(action, Send):
                    out.append((due, action))
                    self._messages += 1
                    self._inject(out, now)
                else:
                    self._finish(out, action, due)
            else:
                if due_drop:
                    assert drop_at is not None
                    self._finish(out, Abort(), drop_at)
                break
        return out

    def _finish(self, out: list[tuple[float, Action]], action: Action, due: float) -> None:
        out.append((due, action))
        self._finished = True
        self._queue.clear()

    def _inject(self, out: list[tuple[float, Action]], now: float) -> None:
        """Add the faults due at the current message count."""
        faults = self.faults
        if self._raw_pending and self._messages == faults.raw_after:
            self._raw_pending = False
            assert faults.raw is not None
            out.append((now, Send(faults.raw)))
        if self._error_pending and self._messages == faults.error_after:
            self._error_pending = False
            text = faults.error_message()
            assert text is not None
            assert faults.error_code is not None
            out.append((now, Send(text)))
            self._finish(
                out, CloseConnection(faults.error_code, close_reason(ERROR_CLOSE_REASON)), now
            )
            return
        if faults.drop_after_messages == self._messages:
            self._finish(out, Abort(), now)
