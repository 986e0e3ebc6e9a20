"""pytest plugin of aai-replay: replay servers as fixtures (registered by entry point).

The fixtures run the server in a background thread so that any test can use
them -- synchronous, asyncio or trio -- and stop it after the test:

- ``aai_replay_server``: a factory. ``aai_replay_server(session, **options)``
  starts a server and returns it (``.url``, ``.api_host``, ``.port``, ``.journal``).
- ``aai_replay``: the server for the session named by the test's
  ``@pytest.mark.aai_replay(SESSION, **options)`` marker, or by indirect
  parametrization (``@pytest.mark.parametrize("aai_replay", [...],
  indirect=True)``); ``aai_replay_url`` is its URL (and takes the same indirect
  parameter). A relative ``SESSION`` path is taken from the rootdir.

``options`` are those of :class:`aai_replay.ReplayServer` (``pacing``, ``speed``,
``strict``, ``api_key``, ``faults``, ...), plus ``verdict``.

**The verdict.** At teardown, after the servers stopped, the test fails when any
connection to them broke a protocol rule (a violation, which includes the
service's own rejections 1008, 3006 and 3007) or, in a strict replay, departed
from the recording; the failure lists each one with its connection and time.
``verdict=False`` (in the marker or the factory call) turns that off for a test
that breaks rules on purpose. Faults the test injects are not the client's doing
and never count. Nothing is imported from trio until a fixture is used: installed
without the ``trio`` extra, the plugin loads (and pytest runs), and only a test
that uses a fixture fails, with one line saying what to install.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ._thread import BackgroundReplayServer

__all__ = ["aai_cassette", "aai_replay", "aai_replay_server", "aai_replay_url"]

MARKER = "aai_replay"
_NEEDS_TRIO = 'the aai-replay fixtures need the trio extra: pip install "aai-proto[trio]"'


CASSETTE = "aai_cassette"
_UPSTREAM_ENV = "AAI_REPLAY_UPSTREAM"


def pytest_addoption(parser: pytest.Parser) -> None:
    """The record mode (pytest-recording's names) and where recordings go."""
    from ._cassette import RECORD_MODES

    group = parser.getgroup("aai-replay", "aai-replay cassettes")
    group.addoption(
        "--aai-record-mode",
        choices=RECORD_MODES,
        default=None,
        help="what the aai_cassette fixture does: none (replay; the default), once (record "
        "a missing cassette), new_episodes, all (record again)",
    )
    group.addoption(
        "--aai-upstream",
        default=None,
        metavar="URL",
        help=f"where recording connects (default: ${_UPSTREAM_ENV}, else the service)",
    )
    group.addoption(
        "--aai-mask",
        action="append",
        default=[],
        metavar="REGEX",
        help="when recording, replace each match with *** in every transcript and word",
    )
    parser.addini("aai_record_mode", "the default record mode of aai_cassette", default="none")


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``aai_replay`` and ``aai_cassette`` markers."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(session, verdict=True, **options): the recorded session (and "
        "ReplayServer options) that the aai_replay and aai_replay_url fixtures serve; "
        "verdict=False: don't fail the test for what the client did wrong",
    )
    config.addinivalue_line(
        "markers",
        f"{CASSETTE}(path=None, record_mode=None, verdict=True, **options): the cassette "
        "of the aai_cassette fixture (default: cassettes/<module>/<test>.jsonl beside "
        "the test file) and its record mode",
    )


StartReplayServer = Callable[..., "BackgroundReplayServer"]
"""The type of the ``aai_replay_server`` fixture."""


_HOW_TO_ALLOW = (
    "(a test that breaks these rules on purpose: pass verdict=False to the "
    f"@pytest.mark.{MARKER} marker or to aai_replay_server)"
)


@pytest.fixture
def aai_replay_server(request: pytest.FixtureRequest) -> Iterator[StartReplayServer]:
    """A factory of replay servers, each stopped at the end of the test.

    ``aai_replay_server(session, verdict=True, **options)`` returns a started
    :class:`~aai_replay.BackgroundReplayServer`; ``session`` is a path, a
    :class:`~aai_replay.RecordedSession`, a list of them (a scenario: one per
    connection, in order) or a :class:`~aai_replay.Scenario`. With ``verdict`` true,
    the test fails at teardown if a client broke a rule on one of its connections,
    or left a connection of a scenario unplayed.
    """
    from ._journal import verdict as problems_of

    try:
        from ._thread import BackgroundReplayServer
    except ModuleNotFoundError as exc:
        if exc.name not in ("trio", "trio_websocket"):
            raise
        pytest.fail(_NEEDS_TRIO, pytrace=False)

    judged: list[BackgroundReplayServer] = []
    with contextlib.ExitStack() as servers:
        # ExitStack stops every server, even when stopping one of them fails.

        def start(
            session: Any,
            *,
            verdict: bool = True,
            **options: Any,
        ) -> Any:
            if isinstance(session, list | tuple):
                from ._scenario import Scenario

                paths = [_resolve(request, item) for item in session]
                session = Scenario.of(paths, name=f"the test's {len(paths)} sessions")
            else:
                session = _resolve(request, session)
            server = servers.enter_context(BackgroundReplayServer(session, **options))
            if verdict:
                judged.append(server)
            return server

        yield start
    problems = [
        line for server in judged for line in [*problems_of(server.journal), *server.unplayed()]
    ]
    if problems:
        listed = "".join(f"\n  {line}" for line in problems)
        pytest.fail(
            f"aai-replay: the client broke the rules of the session:{listed}\n{_HOW_TO_ALLOW}",
            pytrace=False,
        )


def _session_argument(request: pytest.FixtureRequest, fixture: str) -> tuple[Any, dict[str, Any]]:
    marker = request.node.get_closest_marker(MARKER)
    options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    session = getattr(request, "param", None)
    if session is None and marker is not None and marker.args:
        session = marker.args[0]
    if session is None:
        session = options.pop("session", None)
    else:
        options.pop("session", None)
    if session is None:
        pytest.fail(
            f"{fixture} needs a session: mark the test @pytest.mark.{MARKER}(SESSION) "
            f"or parametrize {fixture} indirectly",
            pytrace=False,
        )
    if isinstance(session, list | tuple):
        session = [_resolve(request, item) for item in session]
    else:
        session = _resolve(request, session)
    return session, options


def _resolve(request: pytest.FixtureRequest, session: Any) -> Any:
    """A path relative to the rootdir, or the name of a shipped session (``u3-pro``)."""
    if not isinstance(session, str | os.PathLike):
        return session
    path = Path(session)
    if not path.is_absolute():
        path = request.config.rootpath / path
    if not path.exists():
        from ._shipped import resolve_session

        with contextlib.suppress(FileNotFoundError):  # else the loader says what is wrong
            return resolve_session(os.fspath(session))
    return path


@pytest.fixture
def aai_replay(
    request: pytest.FixtureRequest, aai_replay_server: StartReplayServer
) -> BackgroundReplayServer:
    """The replay server of the test's session (its marker, or an indirect parameter).

    A :class:`~aai_replay.BackgroundReplayServer`: ``.url``, ``.api_host`` and
    ``.journal`` (what the client sent and got, connection by connection).
    """
    session, options = _session_argument(request, "aai_replay")
    return aai_replay_server(session, **options)


@pytest.fixture
def aai_replay_url(request: pytest.FixtureRequest, aai_replay_server: StartReplayServer) -> str:
    """``ws://127.0.0.1:PORT/v3/ws`` of the replay server of the test's session.

    The same server as the ``aai_replay`` fixture's, when a test asks for both.
    """
    if "aai_replay" in request.fixturenames:
        server: BackgroundReplayServer = request.getfixturevalue("aai_replay")
    else:
        session, options = _session_argument(request, "aai_replay_url")
        server = aai_replay_server(session, **options)
    return server.url


@pytest.fixture
def aai_cassette(
    request: pytest.FixtureRequest, aai_replay_server: StartReplayServer
) -> Iterator[Any]:
    """The test's cassette as a server: its recorded connections replayed, or recorded.

    The cassette is ``cassettes/<test module>/<test name>.jsonl`` beside the test
    file (or the ``path`` of ``@pytest.mark.aai_cassette``, from the rootdir), with
    the recorder's ``-2``, ``-3``... files for further connections. The record
    mode (``--aai-record-mode``, the marker's ``record_mode``, or the ini option
    ``aai_record_mode``; pytest-recording's names) decides: ``none`` replays, and a
    missing cassette fails the test with the command that records it; ``once``
    records a missing cassette through the recording proxy to the upstream
    (``--aai-upstream``, ``$AAI_REPLAY_UPSTREAM``, else the service), else replays;
    ``new_episodes`` replays the recorded connections and records the ones after
    them (appended as ``-N`` files); ``all`` records again. With ``CI`` set,
    recording is refused unless the mode was given on the command line.
    Replaying, each connection plays its recorded one, a connection beyond them is
    refused (4901), and one left unplayed fails the test. Either way the fixture
    has ``url`` and ``api_host``.
    """
    from ._cassette import CassetteError, cassette_path, plan_cassette

    marker = request.node.get_closest_marker(CASSETTE)
    options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    given = options.pop("path", marker.args[0] if marker is not None and marker.args else None)
    marked_mode = options.pop("record_mode", None)
    command_line = request.config.getoption("--aai-record-mode")
    mode = command_line or marked_mode or request.config.getini("aai_record_mode")
    path = cassette_path(request.node.path, request.node.name, request.config.rootpath, given)
    try:
        plan = plan_cassette(
            path,
            mode,
            ci=bool(os.environ.get("CI")),
            explicit=command_line is not None,
            node_id=request.node.nodeid,
        )
    except (CassetteError, ValueError) as exc:
        pytest.fail(f"aai-replay: {exc}", pytrace=False)
    with contextlib.ExitStack() as stack:
        if plan.replay:
            from ._scenario import load_scenario

            replay = aai_replay_server(load_scenario(path), **options)
            if not plan.record:
                yield replay
                return
            # new_episodes: the recorded connections replayed, the ones after them recorded.
            from ._thread import BackgroundEpisodes

            first = len(plan.files) + 1
            recorder = _recorder(request, stack, plan.path, (), options, first=first)
            yield stack.enter_context(BackgroundEpisodes(replay, recorder, len(plan.files)))
            return
        stale = plan.files if plan.rewrite else ()
        yield _recorder(request, stack, plan.path, stale, options)


def _recorder(
    request: pytest.FixtureRequest,
    stack: contextlib.ExitStack,
    path: Path,
    stale: tuple[Path, ...],
    options: dict[str, Any],
    *,
    first: int = 1,
) -> Any:
    try:
        from ._thread import BackgroundRecorder
    except ModuleNotFoundError as exc:
        if exc.name not in ("trio", "trio_websocket"):
            raise
        pytest.fail(_NEEDS_TRIO, pytrace=False)
    from aai_proto import DEFAULT_URL

    for old in stale:  # mode all: the connections are recorded anew
        old.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    upstream = (
        request.config.getoption("--aai-upstream") or os.environ.get(_UPSTREAM_ENV) or DEFAULT_URL
    )
    options = {k: v for k, v in options.items() if k != "verdict"}  # the service judges
    hook = options.pop("hook", None)
    masks = request.config.getoption("--aai-mask")
    if masks:
        from ._scrub import mask_text

        masked = mask_text(masks)
        hook = masked if hook is None else _then(hook, masked)
    recorder = BackgroundRecorder(
        path,
        upstream=upstream,
        save_audio=bool(options.pop("save_audio", False)),
        hook=hook,
        first=first,
    )
    return stack.enter_context(recorder)


def _then(first: Callable[[Any], Any], second: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """An entry hook that runs ``first``, then ``second`` on what it kept."""

    def both(entry: Any) -> Any:
        kept = first(entry)
        return None if kept is None else second(kept)

    return both
