"""What both adapters' ``Session`` classes share: reading the core, and acting through it.

Strategy: everything a session knows is the core ``Client``'s (``begin``,
``state``, ``termination``, the failure), and every action is one call to the
core followed by sending what it queued. Only that sending (``_act``: a lock,
the runtime's socket) and the runtime's "broken connection" exception differ, so
a runtime's ``Session`` subclasses this and supplies those two.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from aai_proto import AudioFormat, Begin, Client, Input, State, Termination

from .retry import check_retries

__all__ = ["SessionBase", "check_options"]


class SessionBase:
    """The runtime-neutral half of a session; see the module's strategy note."""

    _client: Client
    _failure_seen: bool
    _terminated: object | None  # set once terminate() was called

    # -- what the session knows ----------------------------------------------------

    @property
    def begin(self) -> Begin:
        """The server's ``Begin`` event (``open_session`` waits for it)."""
        begin = self._client.begin
        assert begin is not None, "open_session returns only once Begin came"
        return begin

    @property
    def session_id(self) -> str:
        """The session's id, from ``Begin``."""
        return self.begin.id

    @property
    def state(self) -> State:
        """The core client's :class:`~aai_proto.State`."""
        return self._client.state

    @property
    def audio_format(self) -> AudioFormat:
        """The format of the audio this session carries."""
        return self._client.audio_format

    @property
    def termination(self) -> Termination | None:
        """The ``Termination`` event, once received."""
        return self._client.termination

    # -- actions --------------------------------------------------------------------

    async def send_audio(self, data: bytes | bytearray | memoryview) -> None:
        """Send audio of any length: it leaves in frames of ``chunk_ms``, the rest waits.

        Waits while the connection cannot take more (backpressure). If this call is
        cancelled before its frames are all out, the connection is closed at once
        and later calls raise the runtime's broken-connection error
        (``trio.BrokenResourceError``; ``aai_proto.asyncio.BrokenSessionError``).
        """
        await self._act(lambda: self._client.send_audio(data))

    async def force_endpoint(self) -> None:
        """Send ``ForceEndpoint``: end the current turn now."""
        await self._act(self._client.force_endpoint)

    async def keep_alive(self) -> None:
        """Send ``KeepAlive``: reset the server's inactivity clock."""
        await self._act(self._client.keep_alive)

    async def update_configuration(self, **fields: Any) -> None:
        """Send ``UpdateConfiguration`` with these settings (``ValueError`` if invalid)."""
        await self._act(lambda: self._client.update_configuration(**fields))

    # -- for the runtime's half -----------------------------------------------------

    async def _act(self, action: Callable[[], object]) -> None:
        """Call ``action`` on the core and send what it queued (the runtime's part)."""
        raise NotImplementedError

    async def terminate(self) -> Termination | None:
        """End the session (the runtime's part)."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Close the connection now (the runtime's part)."""
        raise NotImplementedError

    async def _leave(self) -> None:
        """Leaving ``open_session``'s block normally: terminate unless already done."""
        if self._terminated is None and self._client.failure is None and not self._broken():
            await self.terminate()
            return
        await self.aclose()
        if not self._failure_seen:
            self._raise_failure()

    def _broken_error(self) -> Exception:
        """The runtime's exception for calls after a send was cut off."""
        raise NotImplementedError

    def _raise_failure(self) -> None:
        failure = self._client.failure
        if failure is not None:
            self._failure_seen = True
            # A fresh exception each time, so that tracebacks do not pile up on one.
            raise copy.copy(failure) from failure

    def _broken(self) -> bool:
        return self._client.state is State.BROKEN

    def _check(self) -> None:
        self._raise_failure()
        if self._broken():
            raise self._broken_error()

    def _terminate_if_open(self) -> None:
        # The core's table says whether Terminate can still be sent.
        if self._client.allows(Input.TERMINATE):
            self._client.terminate()


def check_options(
    *,
    terminate_timeout: float,
    connect_timeout: float,
    max_buffered_events: int,
    retries: int = 0,
    retry_delay: float = 0.0,
) -> None:
    """Raise ``ValueError`` for ``open_session`` options no session can run with."""
    for name, value in (
        ("terminate_timeout", terminate_timeout),
        ("connect_timeout", connect_timeout),
    ):
        if type(value) not in (int, float) or not value >= 0:
            raise ValueError(f"{name} must be a number of seconds, at least 0; got {value!r}")
    if type(max_buffered_events) is not int or max_buffered_events < 1:
        raise ValueError(
            f"max_buffered_events must be a positive integer; got {max_buffered_events!r}"
        )
    check_retries(retries, retry_delay)
