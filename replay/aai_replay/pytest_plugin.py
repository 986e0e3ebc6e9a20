"""pytest plugin of aai-replay: replay servers as fixtures (registered by entry point).

Two fixtures, both running the server in a background thread so that any test
can use them -- synchronous, asyncio or trio -- and both stopping it after the
test:

- ``aai_replay_server``: a factory. ``aai_replay_server(session, **options)``
  starts a server and returns it (``.url``, ``.api_host``, ``.port``).
- ``aai_replay_url``: the URL of a server for the session named by the test's
  ``@pytest.mark.aai_replay(SESSION, **options)`` marker, or by indirect
  parametrization (``@pytest.mark.parametrize("aai_replay_url", [...],
  indirect=True)``). A relative ``SESSION`` path is taken from the rootdir.

``options`` are those of :class:`aai_replay.ReplayServer` (``pacing``, ``speed``,
``strict``, ``api_key``, ``faults``, ...). Nothing is imported from trio until a
fixture is used.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ._session import RecordedSession
    from ._thread import BackgroundReplayServer

__all__ = ["aai_replay_server", "aai_replay_url"]

MARKER = "aai_replay"


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``aai_replay`` marker."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(session, **options): the recorded session (and ReplayServer options) "
        "that the aai_replay_url fixture serves",
    )


StartReplayServer = Callable[..., "BackgroundReplayServer"]
"""The type of the ``aai_replay_server`` fixture."""


@pytest.fixture
def aai_replay_server() -> Iterator[StartReplayServer]:
    """A factory of replay servers, each stopped at the end of the test.

    ``aai_replay_server(session, **options)`` returns a started
    :class:`~aai_replay.BackgroundReplayServer`; ``session`` is a path or a
    :class:`~aai_replay.RecordedSession`.
    """
    from ._thread import BackgroundReplayServer

    with contextlib.ExitStack() as servers:
        # ExitStack stops every server, even when stopping one of them fails.

        def start(session: RecordedSession | str | os.PathLike[str], **options: Any) -> Any:
            return servers.enter_context(BackgroundReplayServer(session, **options))

        yield start


def _session_argument(request: pytest.FixtureRequest) -> tuple[Any, dict[str, Any]]:
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
            f"aai_replay_url needs a session: mark the test @pytest.mark.{MARKER}(SESSION) "
            "or parametrize aai_replay_url indirectly",
            pytrace=False,
        )
    if isinstance(session, str | os.PathLike):
        path = Path(session)
        if not path.is_absolute():
            path = request.config.rootpath / path
        session = path
    return session, options


@pytest.fixture
def aai_replay_url(request: pytest.FixtureRequest, aai_replay_server: StartReplayServer) -> str:
    """``ws://127.0.0.1:PORT/v3/ws`` of a replay server for the test's session."""
    session, options = _session_argument(request)
    server = aai_replay_server(session, **options)
    url: str = server.url
    return url
