"""A replay server on its own trio loop in a background thread, for code that is not trio.

Strategy: the thread runs ``trio.run``; the caller waits on a ``threading.Event``
until the server listens (or failed to), and stops it by scheduling a cancel on
the server's loop with its ``TrioToken`` -- thread-safe, and usable from inside
another event loop (asyncio or trio) because nothing blocks but the join.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from types import TracebackType
from typing import Any, Final, final

import trio

from ._journal import ConnectionRecord
from ._scenario import Scenario
from ._server import ReplayServer
from ._session import RecordedSession

__all__ = ["BackgroundRecorder", "BackgroundReplayServer"]

_START_TIMEOUT: Final = 30.0


class BackgroundReplayServer:
    """A :class:`ReplayServer` that runs in a background thread.

    ``start()`` returns once the server listens (``url``, ``api_host`` and ``port``
    are then set); ``stop()`` cancels it and joins the thread. Use it as a context
    manager to do both. Arguments are those of :class:`ReplayServer`.
    """

    def __init__(
        self, session: RecordedSession | Scenario | str | os.PathLike[str], **options: Any
    ) -> None:
        # Built here, so that a bad session or option fails in the caller's thread.
        self.server = ReplayServer(session, **options)
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """``ws://HOST:PORT/v3/ws``."""
        return self.server.url

    @property
    def api_host(self) -> str:
        """``ws://HOST:PORT``, for the official SDK's ``api_host``."""
        return self.server.api_host

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return self.server.port

    @property
    def journal(self) -> list[ConnectionRecord]:
        """What each connection carried so far: see :attr:`ReplayServer.journal`.

        Safe to read from the caller's thread while the server runs.
        """
        return self.server.journal

    def unplayed(self) -> list[str]:
        """The recorded connections of its scenario no client played (see ReplayServer)."""
        return self.server.unplayed()

    @property
    def running(self) -> bool:
        """Whether the server thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> BackgroundReplayServer:
        """Start the thread and wait until the server listens; raise what stopped it if not."""
        if self._thread is not None:
            raise RuntimeError("the server was already started")
        self._thread = threading.Thread(target=self._run, name="aai-replay-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT):  # pragma: no cover - a stuck thread
            raise RuntimeError("the replay server did not start in time")
        if self._error is not None:
            self._thread.join()
            self._raise_error()
        return self

    def _raise_error(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:  # reported to start(), or lost with the thread
            self._error = exc
        finally:
            self._ready.set()

    async def _serve(self, *, task_status: trio.TaskStatus[Any]) -> None:
        await self.server.serve(task_status=task_status)

    async def _main(self) -> None:
        async with trio.open_nursery() as nursery:
            try:
                await nursery.start(self._serve)
            except Exception as exc:  # could not listen: reported by start(), as it is
                self._error = exc
                return
            self._token = trio.lowlevel.current_trio_token()
            self._scope = nursery.cancel_scope
            self._ready.set()

    def stop(self) -> None:
        """Stop the server and join its thread; raise what ended it, if it failed. Idempotent."""
        thread = self._thread
        if thread is None:
            return
        if self._token is not None and self._scope is not None:
            # RunFinishedError: the server failed and its loop already ended.
            with contextlib.suppress(trio.RunFinishedError):
                self._token.run_sync_soon(self._scope.cancel)
        thread.join()
        self._raise_error()

    def __enter__(self) -> BackgroundReplayServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@final
class BackgroundRecorder(BackgroundReplayServer):
    """The recording proxy (:func:`aai_replay.record`) in a background thread.

    ``start()`` returns once it listens (``url``, ``api_host``); ``stop()`` closes
    its connections (their sessions are completed) and joins the thread. Arguments
    are those of :func:`~aai_replay.record`; they are checked in the caller's
    thread, before anything listens.
    """

    def __init__(  # the recorder takes the place of a replay server
        self, out: str | os.PathLike[str], **options: Any
    ) -> None:
        from ._record import check_options

        check_options(out, **options)
        self._out = out
        self._options = options
        self._url: str | None = None
        self._thread = None
        self._ready = threading.Event()
        self._token = None
        self._scope = None
        self._error = None

    @property
    def url(self) -> str:
        """``ws://HOST:PORT/v3/ws``."""
        if self._url is None:
            raise RuntimeError("the recorder is not listening yet")
        return self._url

    @property
    def api_host(self) -> str:
        """``ws://HOST:PORT``, for the official SDK's ``api_host``."""
        return self.url.removesuffix("/v3/ws")

    @property
    def port(self) -> int:
        """The port the recorder listens on."""
        return int(self.api_host.rsplit(":", 1)[1])

    @property
    def journal(self) -> list[ConnectionRecord]:
        """A recorder keeps no journal: its sessions are its files."""
        return []

    def unplayed(self) -> list[str]:
        """Nothing: a recorder plays no recording."""
        return []

    async def _serve(self, *, task_status: trio.TaskStatus[Any]) -> None:
        from ._record import record

        async with trio.open_nursery() as nursery:
            self._url = await nursery.start(functools.partial(record, self._out, **self._options))
            task_status.started(self._url)
