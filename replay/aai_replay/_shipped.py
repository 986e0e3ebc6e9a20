"""The sessions shipped with the package, found by name wherever it is installed.

A wheel carries them in ``aai_replay/_fixtures/sessions`` (with their audio in
``_fixtures/audio``); a source checkout has them in ``fixtures/sessions``. A name
is a file's name without ``.jsonl`` (``u3-pro``); the name with it works too.
Needs no trio: ``aai-replay list`` and ``check`` use it on a core-only install.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Final, final

import attrs

__all__ = ["ShippedSession", "resolve_session", "shipped_sessions"]

_HERE: Final = Path(__file__).resolve().parent
_PLACES: Final = (
    _HERE / "_fixtures" / "sessions",  # installed from a wheel
    _HERE.parent.parent / "fixtures" / "sessions",  # a source checkout (editable install)
)
_SUFFIX: Final = ".jsonl"


@final
@attrs.frozen
class ShippedSession:
    """A shipped session: its ``name``, its file, and its header's description."""

    name: str
    path: Path
    description: str | None


def _directory() -> Path | None:
    return next((place for place in _PLACES if place.is_dir()), None)


def _description(path: Path) -> str | None:
    # The header is the first line; read only that (a session may be long).
    try:
        with path.open(encoding="utf-8") as file:
            header = json.loads(file.readline())
    except (OSError, ValueError):
        return None
    text = header.get("description") if isinstance(header, dict) else None
    return text if isinstance(text, str) else None


def shipped_sessions() -> list[ShippedSession]:
    """Every shipped session, by name (none if the package was installed without them)."""
    where = _directory()
    if where is None:
        return []
    return [
        ShippedSession(path.name[: -len(_SUFFIX)], path, _description(path))
        for path in sorted(where.glob(f"*{_SUFFIX}"))
    ]


def resolve_session(spec: str | os.PathLike[str]) -> Path:
    """The session file ``spec`` means: an existing path, else a shipped session's name.

    A path with a directory in it, or a file name ending in ``.jsonl`` that is
    neither, comes back as it is (reading it says it is missing). A bare name that
    is neither raises ``FileNotFoundError`` naming the shipped sessions.
    """
    path = Path(spec)
    name = os.fspath(spec)
    if path.exists() or os.sep in name or "/" in name:
        return path
    stem = name[: -len(_SUFFIX)] if name.endswith(_SUFFIX) else name
    for session in shipped_sessions():
        if session.name == stem:
            return session.path
    if name.endswith(_SUFFIX):
        return path
    names = ", ".join(s.name for s in shipped_sessions()) or "none are installed"
    raise FileNotFoundError(
        f"no session file {name!r}, and no shipped session of that name (shipped: {names})"
    )
