"""The conformance suite: each test runs once per adapter, ``aai_proto.trio`` and ``.asyncio``.

A test is an ``async def`` taking the ``adapter`` fixture, decorated with
:func:`both`: it runs under the adapter's own event loop (anyio picks trio or
asyncio), against the scripted servers of ``_server.py``, bounded in time.
(pytest-trio's trio mode claims every ``async def`` test, so the decorator turns
the test into a plain function that starts the loop itself.)
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from types import ModuleType
from typing import Any, Literal

import anyio
import attrs
import pytest
import trio

import aai_proto as aai
import aai_proto.asyncio
import aai_proto.trio

LIMIT = 20.0
"""No conformance test may take longer (seconds); most take a fraction of one."""


@attrs.frozen
class Adapter:
    """One adapter under test, and what differs in name between the two."""

    name: Literal["trio", "asyncio"]
    module: ModuleType
    broken: type[Exception]
    """What a call raises on a session a cut-off send left broken."""
    closed: type[Exception]
    """What a call raises on a session closed by ``aclose()``."""

    def open_session(
        self, params: aai.StreamingParams, **options: Any
    ) -> AbstractAsyncContextManager[Any]:
        """The adapter's ``open_session``."""
        return self.module.open_session(params, **options)  # type: ignore[no-any-return]

    def run(self, main: Callable[[], Awaitable[None]], *, limit: float = LIMIT) -> None:
        """Run ``main`` in this adapter's event loop, failing it after ``limit`` seconds."""

        async def bounded() -> None:
            with anyio.fail_after(limit):
                await main()

        anyio.run(bounded, backend=self.name)


ADAPTERS = {
    "trio": Adapter("trio", aai_proto.trio, trio.BrokenResourceError, trio.ClosedResourceError),
    "asyncio": Adapter(
        "asyncio",
        aai_proto.asyncio,
        aai_proto.asyncio.BrokenSessionError,
        aai_proto.asyncio.ClosedSessionError,
    ),
}


@pytest.fixture(params=list(ADAPTERS))
def adapter(request: pytest.FixtureRequest) -> Adapter:
    """Each adapter in turn."""
    return ADAPTERS[request.param]


def both(test: Callable[..., Awaitable[None]] | None = None, *, limit: float = LIMIT) -> Any:
    """Run the ``async def`` test ``test(adapter, ...)`` in the adapter's event loop.

    ``@both`` or ``@both(limit=seconds)``.
    """

    def decorate(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
        @functools.wraps(test)
        def run(adapter: Adapter, **arguments: Any) -> None:
            adapter.run(functools.partial(test, adapter, **arguments), limit=limit)

        return run

    return decorate if test is None else decorate(test)


SHORT_CLOSE = 0.3
"""``CLOSE_TIMEOUT`` (seconds) for the tests that wait it out, so that they stay quick."""
NOT_READ = 4096
"""The receive buffer (bytes) of a server that reads nothing: the client's sends must wait."""


@pytest.fixture
def short_close(adapter: Adapter, monkeypatch: pytest.MonkeyPatch) -> float:
    """The adapter's ``CLOSE_TIMEOUT``, shortened to :data:`SHORT_CLOSE` for the test."""
    assert adapter.module.CLOSE_TIMEOUT == 2.0
    monkeypatch.setattr(adapter.module._session, "CLOSE_TIMEOUT", SHORT_CLOSE)
    return SHORT_CLOSE


async def elapsed(awaitable: Awaitable[object]) -> float:
    """How long ``awaitable`` took, in seconds of the loop's clock."""
    start = anyio.current_time()
    await awaitable
    return anyio.current_time() - start


__all__ = [
    "ADAPTERS",
    "LIMIT",
    "NOT_READ",
    "SHORT_CLOSE",
    "Adapter",
    "adapter",
    "both",
    "elapsed",
    "short_close",
    "xfail_on",
]


def xfail_on(name: str, adapter: Adapter, request: pytest.FixtureRequest, reason: str) -> None:
    """Mark the running test a strict expected failure when ``adapter`` is ``name``.

    For a behaviour the adapters do not share yet: a finding, not a relaxed test.
    """
    if adapter.name == name:
        request.node.add_marker(pytest.mark.xfail(strict=True, reason=reason))
