"""Scenarios: one replay server, many connections, each with its recording and faults.

Strategy: a scenario is an ordered list of entries (a recorded session and that
connection's faults), and a :class:`ScenarioPlayer` is the sans-IO state of one
server playing it: for each connection it is told the request's parameters and
answers with the entry to replay, or with the close that refuses the connection
(a 49xx code and a reason naming the scenario and the count). What it has played
is kept, so that the entries left unplayed at the end can be reported: a test
that recorded a reconnect but no longer reconnects must fail.

On disk a scenario is either the set the recorder writes (``NAME.jsonl``,
``NAME-2.jsonl``, ``NAME-3.jsonl``, ...: give the first) or a manifest,
``NAME.scenario.json``, small enough to write by hand (see
``docs/scenario-format.md``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal, final

import attrs

from aai_proto import StreamingParams

from ._faults import Faults
from ._replay import request_differences
from ._session import RecordedSession, load_session

__all__ = [
    "EXHAUSTED_CODE",
    "NO_MATCH_CODE",
    "SCENARIO_SUFFIX",
    "Scenario",
    "ScenarioEntry",
    "ScenarioFormatError",
    "ScenarioPlayer",
    "ScenarioRefusal",
    "load_scenario",
    "numbered_set",
]

SCENARIO_VERSION: Final = 1
SCENARIO_SUFFIX: Final = ".scenario.json"
"""The name ending of a scenario manifest."""
EXHAUSTED_CODE: Final = 4901
"""The close code of a connection beyond the scenario's recorded connections."""
NO_MATCH_CODE: Final = 4902
"""The close code of a connection whose request no recorded connection matches."""

Selection = Literal["order", "request"]
AfterLast = Literal["refuse", "repeat"]
_SELECTIONS: Final = ("order", "request")
_AFTER_LAST: Final = ("refuse", "repeat")
_MANIFEST_KEYS: Final = frozenset(
    {"aai_scenario", "description", "select", "match_on", "after_last", "connections"}
)
_CONNECTION_KEYS: Final = frozenset({"session", "faults"})
# The fault names a manifest may use: Faults' own fields.
_FAULT_KEYS: Final = frozenset(a.name for a in attrs.fields(Faults))
# The recorder's names for a client's further connections: NAME-2.jsonl, NAME-3.jsonl, ...
_NUMBERED: Final = re.compile(r"(?P<stem>.+)-(?P<n>[2-9]|[1-9][0-9]+)\Z")


class ScenarioFormatError(ValueError):
    """A scenario manifest (or one of its sessions) is not valid.

    ``str()`` names the file and what is wrong with it.
    """

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")

    def __reduce__(self) -> tuple[type[ScenarioFormatError], tuple[str, str]]:
        return type(self), (self.path, self.problem)


def _check_selection(_: Any, __: Any, value: object) -> None:
    if value not in _SELECTIONS:
        raise ValueError(f"select must be one of {', '.join(_SELECTIONS)}, got {value!r}")


def _check_after_last(_: Any, __: Any, value: object) -> None:
    if value not in _AFTER_LAST:
        raise ValueError(f"after_last must be one of {', '.join(_AFTER_LAST)}, got {value!r}")


def _check_match_on(_: Any, __: Any, value: object) -> None:
    if value is None:
        return
    if not isinstance(value, tuple) or not all(type(n) is str and n for n in value):
        raise ValueError("match_on must be a sequence of parameter names")


def _to_match_on(value: Sequence[str] | None) -> Any:
    if value is None or isinstance(value, str):
        return value  # a str is refused by the validator, not split into letters
    return tuple(value)


@final
@attrs.frozen(kw_only=True)
class ScenarioEntry:
    """One recorded connection of a scenario, and the faults to play it with."""

    session: RecordedSession = attrs.field(validator=attrs.validators.instance_of(RecordedSession))
    faults: Faults = attrs.field(factory=Faults, validator=attrs.validators.instance_of(Faults))


def _to_entries(value: Sequence[ScenarioEntry | RecordedSession]) -> tuple[ScenarioEntry, ...]:
    return tuple(
        ScenarioEntry(session=item) if isinstance(item, RecordedSession) else item for item in value
    )


def _check_entries(_: Any, __: Any, value: tuple[object, ...]) -> None:
    if not value:
        raise ValueError("a scenario needs at least one connection")
    for item in value:
        if not isinstance(item, ScenarioEntry):
            raise TypeError(f"a scenario's entries are ScenarioEntry values, got {item!r}")


@final
@attrs.frozen(kw_only=True)
class Scenario:
    """The connections one replay server plays, in order.

    ``entries``: each a :class:`ScenarioEntry` (a bare :class:`RecordedSession` is
    taken as one without faults). ``select``: ``"order"`` gives the Nth connection
    the Nth entry; ``"request"`` gives it the first entry not yet played whose
    recorded parameters equal the live request's, on every known parameter or on
    those ``match_on`` names (vcrpy's ``match_on``). ``after_last``: ``"refuse"``
    closes a connection beyond the entries with :data:`EXHAUSTED_CODE`;
    ``"repeat"`` plays the last entry (the last matching one, by request) again.
    ``name`` is what refusals and reports call it.
    """

    entries: tuple[ScenarioEntry, ...] = attrs.field(
        converter=_to_entries, validator=_check_entries
    )
    select: Selection = attrs.field(default="order", validator=_check_selection)
    match_on: tuple[str, ...] | None = attrs.field(
        default=None, converter=_to_match_on, validator=_check_match_on
    )
    after_last: AfterLast = attrs.field(default="refuse", validator=_check_after_last)
    name: str = "scenario"
    description: str | None = None

    @classmethod
    def of(
        cls, sessions: Sequence[RecordedSession | str | os.PathLike[str]], **options: Any
    ) -> Scenario:
        """A scenario of these sessions (or session files), in order, without faults."""
        loaded = [s if isinstance(s, RecordedSession) else load_session(s) for s in sessions]
        return cls(entries=loaded, **options)


@final
@attrs.frozen(kw_only=True)
class ScenarioRefusal:
    """Why a connection gets no recorded connection: close it with ``code`` and ``reason``."""

    code: int
    reason: str


def _differences(
    entry: ScenarioEntry, live: StreamingParams, match_on: tuple[str, ...] | None
) -> list[tuple[str, str, str]]:
    found = request_differences(entry.session.params, live)
    return found if match_on is None else [d for d in found if d[0] in match_on]


@final
class ScenarioPlayer:
    """Which entry of a :class:`Scenario` each connection plays, without I/O.

    Call :meth:`choose` once per accepted connection, in the order they come.
    Not thread-safe: one server's connections are chosen in one thread.
    """

    def __init__(self, scenario: Scenario) -> None:
        if not isinstance(scenario, Scenario):
            raise TypeError(f"scenario must be a Scenario, got {type(scenario).__name__}")
        self.scenario = scenario
        self._played = [0] * len(scenario.entries)
        self._connections = 0

    @property
    def connections(self) -> int:
        """How many connections were chosen for (refused ones included)."""
        return self._connections

    @property
    def played(self) -> tuple[int, ...]:
        """How many times each entry was played, by position."""
        return tuple(self._played)

    def unplayed(self) -> list[int]:
        """The positions (from 0) of the entries no connection played."""
        return [i for i, n in enumerate(self._played) if n == 0]

    def choose(self, params: StreamingParams) -> ScenarioEntry | ScenarioRefusal:
        """The entry the next connection plays, given its request's parameters.

        Or the refusal to close it with, when there is none.
        """
        chosen = self.choose_index(params)
        return chosen if isinstance(chosen, ScenarioRefusal) else self.scenario.entries[chosen]

    def choose_index(self, params: StreamingParams) -> int | ScenarioRefusal:
        """As :meth:`choose`, the entry's position (from 0) instead of the entry."""
        scenario = self.scenario
        self._connections += 1
        count = self._connections
        entries = scenario.entries
        if scenario.select == "order":
            candidates = list(range(len(entries)))
        else:
            candidates = [
                i for i, e in enumerate(entries) if not _differences(e, params, scenario.match_on)
            ]
            if not candidates:
                return ScenarioRefusal(code=NO_MATCH_CODE, reason=self._no_match(params, count))
        fresh = [i for i in candidates if self._played[i] == 0]
        if fresh:
            index = fresh[0]
        elif scenario.after_last == "repeat":
            index = candidates[-1]
        else:
            return ScenarioRefusal(code=EXHAUSTED_CODE, reason=self._exhausted(count))
        self._played[index] += 1
        return index

    def _exhausted(self, count: int) -> str:
        total = len(self.scenario.entries)
        noun = "connection" if total == 1 else "connections"
        return f"{self.scenario.name}: connection {count}, but {total} recorded {noun}"

    def _no_match(self, params: StreamingParams, count: int) -> str:
        # Name the parameters of the closest entry that differ (credentials never compared).
        best = min(
            self.scenario.entries,
            key=lambda e: len(_differences(e, params, self.scenario.match_on)),
        )
        shown = ", ".join(
            f"{name}={live}" for name, _, live in _differences(best, params, self.scenario.match_on)
        )
        return f"{self.scenario.name}: connection {count} matches no recording ({shown})"


# -- on disk --------------------------------------------------------------------------


def load_scenario(path: str | os.PathLike[str]) -> Scenario:
    """Load a scenario: a manifest (``*.scenario.json``) or the recorder's set of sessions.

    For a session file ``NAME.jsonl`` the scenario is it and ``NAME-2.jsonl``,
    ``NAME-3.jsonl``, ... beside it, as long as the numbers follow on; for
    ``NAME-2.jsonl`` itself, it alone. Raises :class:`ScenarioFormatError` for an
    invalid manifest, :class:`~aai_replay.SessionFormatError` for an invalid
    session, ``OSError`` for a file that cannot be read.
    """
    where = Path(path)
    if where.name.endswith(SCENARIO_SUFFIX):
        return _load_manifest(where)
    sessions = [load_session(where)]
    sessions.extend(load_session(more) for more in numbered_set(where)[1:])
    return Scenario(entries=sessions, name=where.name)


def numbered_set(path: str | os.PathLike[str]) -> list[Path]:
    """``path`` and the recorder's further files beside it that exist: ``NAME-2.jsonl``, ...

    Only for a ``.jsonl`` name that is not numbered itself; the numbers must follow
    on. ``path`` comes first whether it exists or not.
    """
    where = Path(path)
    found = [where]
    stem = where.name[: -len(where.suffix)] if where.suffix else where.name
    if where.suffix == ".jsonl" and not _NUMBERED.match(stem):
        n = 2
        while (more := where.with_name(f"{stem}-{n}.jsonl")).is_file():
            found.append(more)
            n += 1
    return found


def _load_manifest(path: Path) -> Scenario:
    shown = str(path)
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise ScenarioFormatError(shown, f"not valid JSON ({_reason(exc)})") from None
    if not isinstance(data, dict):
        raise ScenarioFormatError(shown, "a scenario manifest is a JSON object")
    if data.get("aai_scenario") != SCENARIO_VERSION or type(data.get("aai_scenario")) is not int:
        raise ScenarioFormatError(shown, f'"aai_scenario" must be {SCENARIO_VERSION}')
    unknown = sorted(set(data) - _MANIFEST_KEYS)
    if unknown:
        raise ScenarioFormatError(shown, f"unknown key {unknown[0]!r}")
    connections = data.get("connections")
    if not isinstance(connections, list) or not connections:
        raise ScenarioFormatError(shown, '"connections" must be a non-empty list')
    entries = [_entry(path, i, item) for i, item in enumerate(connections, start=1)]
    options: dict[str, Any] = {"name": path.name}
    for key in ("select", "after_last", "description"):
        if key in data:
            options[key] = data[key]
    if "description" in options and type(options["description"]) is not str:
        raise ScenarioFormatError(shown, '"description" must be a string')
    if "match_on" in data:
        match_on = data["match_on"]
        if not isinstance(match_on, list) or not all(type(n) is str and n for n in match_on):
            raise ScenarioFormatError(shown, '"match_on" must be a list of parameter names')
        if data.get("select") != "request":
            raise ScenarioFormatError(shown, '"match_on" needs "select": "request"')
        options["match_on"] = match_on
    try:
        return Scenario(entries=entries, **options)
    except (TypeError, ValueError) as exc:
        raise ScenarioFormatError(shown, str(exc)) from None


def _entry(manifest: Path, number: int, item: object) -> ScenarioEntry:
    if not isinstance(item, dict):
        raise ScenarioFormatError(str(manifest), f"connection {number} must be a JSON object")
    unknown = sorted(set(item) - _CONNECTION_KEYS)
    if unknown:
        raise ScenarioFormatError(str(manifest), f"connection {number}: unknown key {unknown[0]!r}")
    name = item.get("session")
    if type(name) is not str or not name:
        raise ScenarioFormatError(
            str(manifest), f'connection {number}: "session" must name a session file'
        )
    faults = _faults(manifest, number, item.get("faults", {}))
    try:
        session = load_session(manifest.parent / name)
    except FileNotFoundError:
        raise ScenarioFormatError(
            str(manifest), f"connection {number}: no session file {name!r} beside the manifest"
        ) from None
    except OSError as exc:
        raise ScenarioFormatError(
            str(manifest), f"connection {number}: can't read {name!r} ({exc.strerror})"
        ) from None
    return ScenarioEntry(session=session, faults=faults)


def _faults(manifest: Path, number: int, value: object) -> Faults:
    where = f"connection {number}"
    if not isinstance(value, Mapping):
        raise ScenarioFormatError(str(manifest), f'{where}: "faults" must be a JSON object')
    unknown = sorted(set(value) - _FAULT_KEYS)
    if unknown:
        raise ScenarioFormatError(
            str(manifest),
            f"{where}: unknown fault {unknown[0]!r} (known: {', '.join(sorted(_FAULT_KEYS))})",
        )
    try:
        return Faults(**value)
    except (TypeError, ValueError) as exc:
        raise ScenarioFormatError(str(manifest), f"{where}: {exc}") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, json.JSONDecodeError):
        return f"line {exc.lineno} column {exc.colno}: {exc.msg}"
    return str(exc)
