"""A replay server on its own trio loop in a background thread, for code that is not trio.

Strategy: the thread runs ``trio.run``; the caller waits on a ``threading.Event``
until the server listens (or failed to), and stops it by scheduling a cancel on
the server's loop with its ``TrioToken`` -- thread-safe, and usable from inside
another event loop (asyncio or trio) because nothing blocks but the join.
"""

from __future__ import annotations

import contextlib
import os
import threading
from types import TracebackType
from typing import Any, Final, TypeVar, final

import trio

from ._journal import ConnectionRecord
from ._scenario import Scenario
from ._server import ReplayServer
from ._session import RecordedSession

__all__ = ["BackgroundEpisodes", "BackgroundRecorder", "BackgroundReplayServer"]

_START_TIMEOUT: Final = 30.0


_B = TypeVar("_B", bound="_Background")


class _Background:
    """Something that listens, on a trio loop of its own in a background thread.

    ``start()`` returns once it listens (``url``, ``api_host`` and ``port`` are then
    set); ``stop()`` cancels it and joins the thread. Use it as a context manager
    to do both. A subclass says what to run in :meth:`_serve`.
    """

    def __init__(self) -> None:
        self._url: str | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._error: BaseException | None = None

    async def _serve(self, *, task_status: trio.TaskStatus[Any]) -> None:
        """Listen, say so with ``task_status.started(...)``, serve until cancelled."""
        raise NotImplementedError

    def _url_of(self, started: Any) -> str:
        """The URL, from what :meth:`_serve` gave ``task_status.started()``: by default it."""
        return str(started)

    @property
    def url(self) -> str:
        """``ws://HOST:PORT/v3/ws``."""
        if self._url is None:
            raise RuntimeError(f"the {type(self).__name__} is not listening yet")
        return self._url

    @property
    def api_host(self) -> str:
        """``ws://HOST:PORT``, for the official SDK's ``api_host``."""
        return self.url.removesuffix("/v3/ws")

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self.api_host.rsplit(":", 1)[1])

    @property
    def journal(self) -> list[ConnectionRecord]:
        """What each replayed connection carried so far (none by default)."""
        return []

    def unplayed(self) -> list[str]:
        """The recorded connections no client played (none by default)."""
        return []

    @property
    def running(self) -> bool:
        """Whether the thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self: _B) -> _B:
        """Start the thread and wait until it listens; raise what stopped it if not."""
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

    async def _main(self) -> None:
        async with trio.open_nursery() as nursery:
            try:
                self._url = self._url_of(await nursery.start(self._serve))
            except Exception as exc:  # could not listen: reported by start(), as it is
                self._error = exc
                return
            self._token = trio.lowlevel.current_trio_token()
            self._scope = nursery.cancel_scope
            self._ready.set()

    def stop(self) -> None:
        """Stop it and join its thread; raise what ended it, if it failed. Idempotent."""
        thread = self._thread
        if thread is None:
            return
        if self._token is not None and self._scope is not None:
            # RunFinishedError: the server failed and its loop already ended.
            with contextlib.suppress(trio.RunFinishedError):
                self._token.run_sync_soon(self._scope.cancel)
        thread.join()
        self._raise_error()

    def __enter__(self: _B) -> _B:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class BackgroundReplayServer(_Background):
    """A :class:`ReplayServer` that runs in a background thread.

    ``start()`` returns once the server listens (``url``, ``api_host`` and ``port``
    are then set); ``stop()`` cancels it and joins the thread. Use it as a context
    manager to do both. Arguments are those of :class:`ReplayServer`.
    """

    def __init__(
        self, session: RecordedSession | Scenario | str | os.PathLike[str], **options: Any
    ) -> None:
        super().__init__()
        # Built here, so that a bad session or option fails in the caller's thread.
        self.server = ReplayServer(session, **options)

    @property
    def port(self) -> int:
        """The port the server listens on (0 before it does, if it was asked for any)."""
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

    async def _serve(self, *, task_status: trio.TaskStatus[Any]) -> None:
        await self.server.serve(task_status=task_status)

    def _url_of(self, started: Any) -> str:
        return self.server.url


@final
class BackgroundRecorder(_Background):
    """The recording proxy (:func:`aai_replay.record`) in a background thread.

    ``start()`` returns once it listens (``url``, ``api_host``); ``stop()`` closes
    its connections (their sessions are completed) and joins the thread. Arguments
    are those of :func:`~aai_replay.record`; they are checked in the caller's
    thread, before anything listens. It keeps no journal: its sessions are its files.
    """

    def __init__(self, out: str | os.PathLike[str], **options: Any) -> None:
        from ._record import check_options

        super().__init__()
        check_options(out, **options)
        self._out = out
        self._options = options

    async def _serve(self, *, task_status: trio.TaskStatus[Any]) -> None:
        from ._record import record

        await record(self._out, task_status=task_status, **self._options)


_PIPE_BYTES: Final = 1 << 16


async def _pipe(source: trio.abc.Stream, sink: trio.abc.Stream) -> None:
    """Copy ``source`` to ``sink`` until it ends, then end ``sink``'s sending side."""
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        while data := await source.receive_some(_PIPE_BYTES):
            await sink.send_all(data)
        if isinstance(sink, trio.abc.HalfCloseableStream):
            await sink.send_eof()


@final
class BackgroundEpisodes(_Background):
    """Record mode ``new_episodes``: recorded connections replayed, the ones after recorded.

    A TCP switch in a background thread: the first ``recorded`` connections go to
    ``replay`` (a started :class:`BackgroundReplayServer` of the cassette), every
    later one to ``recorder`` (a started :class:`BackgroundRecorder` that numbers its
    files from ``recorded + 1``). ``journal`` and :meth:`unplayed` are the replay's.
    """

    def __init__(
        self, replay: BackgroundReplayServer, recorder: BackgroundRecorder, recorded: int
    ) -> None:
        super().__init__()
        self._replay = replay
        self._recorder = recorder
        self._recorded = recorded
        self._count = 0

    @property
    def journal(self) -> list[ConnectionRecord]:
        """The replayed connections' journal (the recorded ones are in their files)."""
        return self._replay.journal

    def unplayed(self) -> list[str]:
        """The recorded connections no client played."""
        return self._replay.unplayed()

    async def _serve(self, *, task_status: trio.TaskStatus[Any]) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._switch, listeners)
            task_status.started(f"ws://127.0.0.1:{port}/v3/ws")

    async def _switch(self, client: trio.abc.Stream) -> None:
        self._count += 1
        backend = self._replay if self._count <= self._recorded else self._recorder
        try:
            upstream = await trio.open_tcp_stream("127.0.0.1", backend.port)
        except OSError:
            await trio.aclose_forcefully(client)
            return
        async with client, upstream, trio.open_nursery() as nursery:
            nursery.start_soon(_pipe, client, upstream)
            nursery.start_soon(_pipe, upstream, client)
