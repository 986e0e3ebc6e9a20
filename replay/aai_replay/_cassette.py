"""Cassettes: where a test's recorded connections live, and whether to replay or record.

Strategy: pytest-recording's workflow for WebSocket sessions. A test's cassette is
a scenario on disk (``NAME.jsonl``, ``NAME-2.jsonl``, ... as the recorder writes
them), by default ``cassettes/<test module>/<test name>.jsonl`` beside the test
file. The record mode decides, from whether the cassette exists, what the test's
server does; this module only decides (a :class:`CassettePlan`) and says why a
test cannot run (:class:`CassetteError`), so that the rules are tested without
sockets.

- ``none`` (the default): replay; a missing cassette is an error that gives the
  path and the command line that records it.
- ``once``: record if the cassette is missing, else replay.
- ``new_episodes``: replay the recorded connections, record the ones beyond them.
- ``all``: record everything again.

Recording when the environment variable ``CI`` is set is refused unless the mode
was given explicitly on the command line: a CI run must never reach the service
by accident.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Final, Literal, final

import attrs

from ._scenario import numbered_set

__all__ = [
    "RECORD_MODES",
    "CassetteError",
    "CassettePlan",
    "RecordMode",
    "cassette_path",
    "plan_cassette",
]

RecordMode = Literal["none", "once", "new_episodes", "all"]
RECORD_MODES: Final = ("none", "once", "new_episodes", "all")
# Characters a test id may hold that a file name should not (parametrize ids can hold anything).
_UNSAFE: Final = re.compile(r"[^\w.\[\]=,+-]")


class CassetteError(Exception):
    """The test cannot run with its cassette as the record mode stands; ``str()`` says why."""


@final
@attrs.frozen(kw_only=True)
class CassettePlan:
    """What a test's server does with its cassette.

    ``replay``: serve the recorded connections (all of them, or with ``record``
    the ones recorded, before recording more). ``record``: record connections
    through the recording proxy. ``rewrite``: remove the cassette's files before
    recording (mode ``all``). ``files``: the cassette's files now on disk.
    """

    path: Path
    mode: RecordMode
    replay: bool
    record: bool
    rewrite: bool
    files: tuple[Path, ...]


def cassette_path(
    test_file: str | os.PathLike[str],
    test_name: str,
    rootdir: str | os.PathLike[str],
    given: str | os.PathLike[str] | None = None,
) -> Path:
    """The cassette of a test: ``given`` (relative to ``rootdir``), else the default place.

    The default is ``cassettes/<test module>/<test name>.jsonl`` in the test
    file's directory, the name made safe for a file system.
    """
    if given is not None:
        path = Path(given)
        return path if path.is_absolute() else Path(rootdir) / path
    module = Path(test_file)
    safe = _UNSAFE.sub("_", test_name)
    return module.parent / "cassettes" / module.stem / f"{safe}.jsonl"


def plan_cassette(
    path: Path,
    mode: str,
    *,
    ci: bool,
    explicit: bool,
    node_id: str,
) -> CassettePlan:
    """Decide what to do with the cassette at ``path`` in ``mode``.

    ``ci``: the environment variable ``CI`` is set; ``explicit``: the mode was
    given on the command line; ``node_id``: the test's id, for the command line
    in messages. Raises :class:`CassetteError` when the test cannot run, and
    ``ValueError`` for an unknown mode.
    """
    if mode not in RECORD_MODES:
        raise ValueError(f"the record mode must be one of {', '.join(RECORD_MODES)}, got {mode!r}")
    files = tuple(p for p in numbered_set(path) if p.is_file())
    exists = path.is_file()
    if mode == "none":
        if not exists:
            raise CassetteError(
                f"no cassette at {path}; record it with: pytest --aai-record-mode=once {node_id!r}"
            )
        replay, record = True, False
    elif mode == "once":
        replay, record = exists, not exists
    elif mode == "new_episodes":
        replay, record = exists, True
    else:
        replay, record = False, True
    if record and ci and not explicit:
        raise CassetteError(
            f"recording {path} is refused: CI is set; "
            f"give --aai-record-mode={mode} on the command line to record in CI"
        )
    return CassettePlan(
        path=path,
        mode=mode,  # type: ignore[arg-type]
        replay=replay,
        record=record,
        rewrite=mode == "all",
        files=files,
    )
