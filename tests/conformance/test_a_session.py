"""A session that goes well, and the calls a caller may make on it, for both adapters."""

from __future__ import annotations

import random
from typing import Any

import anyio
import pytest

import aai_proto as aai
from tests.conformance._server import BEGIN, TERMINATE, Handler, Peer, dump, serve
from tests.conformance.conftest import Adapter, both

KEY = "sk-test-SECRET-KEY-0123"
TOKEN = "tok-SECRET-TOKEN-4567"
PARAMS = aai.StreamingParams(sample_rate=16000)
FRAME = 1600  # bytes in 50 ms of 16 kHz pcm_s16le
TERMINATION = aai.Termination(audio_duration_seconds=3, session_duration_seconds=4)
MUCH = 8 << 20
"""Bytes of audio more than a server that reads nothing lets through: the send waits."""


def turn(order: int, text: str, *, end: bool = False) -> aai.Turn:
    return aai.Turn(
        turn_order=order,
        turn_is_formatted=end,
        end_of_turn=end,
        transcript=text,
        end_of_turn_confidence=1.0 if end else 0.0,
        words=(),
    )


def answering(*before_end: str, reading_after: anyio.Event | None = None) -> Handler:
    """A server that answers Terminate with ``before_end`` messages, then Termination.

    With ``reading_after``, it reads nothing until that event is set, so that the
    client's audio waits for room.
    """

    async def handler(peer: Peer) -> None:
        await peer.accept()
        if reading_after is not None:
            await reading_after.wait()
        await peer.receive_until_terminate()
        for message in before_end:
            await peer.send_message(message)
        await peer.send_message(dump(TERMINATION))
        await peer.wait_close()

    return handler


@both
async def test_session_sends_in_order_and_terminates(adapter: Adapter) -> None:
    partial, final = turn(0, "hel"), turn(0, "hello", end=True)
    async with serve(answering(dump(partial), dump(final))) as server:
        async with adapter.open_session(PARAMS, api_key=KEY, url=server.url) as session:
            assert session.begin == BEGIN
            assert session.session_id == "session-1"
            assert session.state.value == "STREAMING"
            assert session.audio_format == aai.AudioFormat(sample_rate=16000)
            audio = bytes(range(256)) * 13  # 3328 bytes: two frames and 128 bytes
            await session.send_audio(audio)
            await session.force_endpoint()
            await session.keep_alive()
            await session.update_configuration(max_turn_silence=500, keyterms_prompt=["aai"])
            assert await session.terminate() == TERMINATION
            assert session.termination == TERMINATION
            assert session.state is aai.State.CLOSED
            assert [event async for event in session] == [BEGIN, partial, final, TERMINATION]
        await server.peer.closed.wait()
    peer = server.peer
    assert peer.received == [
        audio[:FRAME],
        audio[FRAME : 2 * FRAME],
        '{"type":"ForceEndpoint"}',
        '{"type":"KeepAlive"}',
        '{"type":"UpdateConfiguration","max_turn_silence":500,"keyterms_prompt":["aai"]}',
        audio[2 * FRAME :] + bytes(FRAME - 128),  # the tail, padded to 50 ms
        TERMINATE,
    ]
    assert peer.request is not None
    assert peer.request.target == "/v3/ws?sample_rate=16000&encoding=pcm_s16le"
    assert peer.header("authorization") == KEY
    assert peer.header("user-agent") == aai.DEFAULT_USER_AGENT
    assert peer.close is not None
    assert peer.close.code == 1000


@both
async def test_token_travels_in_the_authorization_header(adapter: Adapter) -> None:
    async with serve(answering()) as server:
        async with adapter.open_session(PARAMS, token=TOKEN, url=server.url) as session:
            assert await session.terminate() == TERMINATION
        await server.peer.closed.wait()
    peer = server.peer
    assert peer.header("authorization") == TOKEN
    assert peer.request is not None
    assert TOKEN not in peer.request.target


@both
async def test_leaving_the_block_terminates_once(adapter: Adapter) -> None:
    async with serve(answering()) as server:
        async with adapter.open_session(PARAMS, api_key=KEY, url=server.url) as session:
            await session.send_audio(bytes(FRAME))
        await server.peer.closed.wait()
    assert session.termination == TERMINATION
    assert server.peer.received == [bytes(FRAME), TERMINATE]
    assert server.peer.close is not None
    assert server.peer.close.code == 1000


@both
async def test_terminate_twice_returns_the_same_and_sends_once(adapter: Adapter) -> None:
    results: list[aai.Termination | None] = []

    async def terminate(session: Any) -> None:
        results.append(await session.terminate())

    async with serve(answering()) as server:
        async with adapter.open_session(PARAMS, api_key=KEY, url=server.url) as session:
            async with anyio.create_task_group() as group:
                group.start_soon(terminate, session)
                group.start_soon(terminate, session)
            assert await session.terminate() is results[0]  # again: the same, nothing sent
        await server.peer.closed.wait()
    assert results == [TERMINATION, TERMINATION]
    assert server.peer.received == [TERMINATE]


@both
async def test_actions_after_terminate_raise_local_protocol_error(adapter: Adapter) -> None:
    async with serve(answering()) as server:
        async with adapter.open_session(PARAMS, api_key=KEY, url=server.url) as session:
            assert await session.terminate() == TERMINATION
            misuse = aai.LocalProtocolError
            with pytest.raises(misuse, match="can't send_audio in state CLOSED"):
                await session.send_audio(bytes(FRAME))
            with pytest.raises(misuse, match="can't force_endpoint in state CLOSED"):
                await session.force_endpoint()
            assert session.state is aai.State.CLOSED
            assert [event async for event in session] == [BEGIN, TERMINATION]
        await server.peer.closed.wait()
    assert server.peer.received == [TERMINATE]


@both
async def test_invalid_update_sends_nothing(adapter: Adapter) -> None:
    async with serve(answering()) as server:
        async with adapter.open_session(PARAMS, api_key=KEY, url=server.url) as session:
            with pytest.raises(ValueError, match="can't update sample_rate"):
                await session.update_configuration(sample_rate=8000)
            with pytest.raises(aai.InvalidParameter, match="Invalid 'vad_threshold'"):
                await session.update_configuration(vad_threshold=2.0)
            assert await session.terminate() == TERMINATION
        await server.peer.closed.wait()
    assert server.peer.received == [TERMINATE]


@both
async def test_iteration_ends_after_termination_and_stays_ended(adapter: Adapter) -> None:
    async def handler(peer: Peer) -> None:
        await peer.accept()
        await peer.send_message(dump(TERMINATION))  # unasked, and the server keeps the socket
        await peer.wait_close()

    async with serve(handler) as server:
        async with adapter.open_session(PARAMS, api_key=KEY, url=server.url) as session:
            # Iteration does not wait for the close: the server has not closed.
            assert [event async for event in session] == [BEGIN, TERMINATION]
            assert [event async for event in session] == []
            with pytest.raises(StopAsyncIteration):
                await session.__anext__()
            assert not server.peer.closed.is_set()
        await server.peer.closed.wait()
    assert server.peer.received == []  # already terminated: no Terminate is sent
    assert server.peer.close is not None
    assert server.peer.close.code == 1000


@both
async def test_events_wait_for_a_caller_that_never_iterates(adapter: Adapter) -> None:
    turns = [turn(n, f"turn {n}", end=True) for n in range(50)]
    async with (
        serve(answering(*map(dump, turns))) as server,
        adapter.open_session(PARAMS, api_key=KEY, url=server.url, max_buffered_events=2) as session,
    ):
        # The bound is lifted while the session ends: Termination is seen.
        assert await session.terminate() == TERMINATION
        assert [event async for event in session] == [BEGIN, *turns, TERMINATION]


@both
async def test_backpressure_keeps_every_event_in_order(adapter: Adapter) -> None:
    turns = [turn(n, f"turn {n}", end=True) for n in range(20)]

    async def handler(peer: Peer) -> None:
        await peer.accept()
        events: list[aai.ServerEvent] = [*turns, TERMINATION]
        for event in events:
            await peer.send_message(dump(event))
        await peer.wait_close()

    async with serve(handler) as server:
        async with adapter.open_session(
            PARAMS, api_key=KEY, url=server.url, max_buffered_events=1
        ) as session:
            await anyio.sleep(0.1)  # time enough to read everything, were there no bound
            # The reader stopped at one event waiting: Termination is not read yet.
            assert session.termination is None
            assert await session.__anext__() == BEGIN
            await anyio.sleep(0.05)
            assert session.termination is None
            assert [event async for event in session] == [*turns, TERMINATION]
        await server.peer.closed.wait()
    assert server.peer.received == []


@both
async def test_sends_are_serialised(adapter: Adapter) -> None:
    go = anyio.Event()
    handler = answering(reading_after=go)
    audio = random.Random(0).randbytes(MUCH)  # no two frames alike
    audio_sent = anyio.Event()

    async def send_audio(session: Any) -> None:
        await session.send_audio(audio)
        audio_sent.set()

    async with serve(handler, receive_buffer=4096) as server:
        async with adapter.open_session(PARAMS, api_key=KEY, url=server.url) as session:
            async with anyio.create_task_group() as senders:
                senders.start_soon(send_audio, session)
                await anyio.sleep(0.1)
                assert not audio_sent.is_set()  # the audio is part sent
                senders.start_soon(session.force_endpoint)
                await anyio.sleep(0.1)
                go.set()
            assert await session.terminate() == TERMINATION
        await server.peer.closed.wait()
    whole = len(audio) // FRAME * FRAME  # the rest waits for more audio, or the end
    frames = [audio[i : i + FRAME] for i in range(0, whole, FRAME)]
    tail = audio[whole:] + bytes(FRAME - len(audio) + whole)
    assert server.peer.received == [*frames, '{"type":"ForceEndpoint"}', tail, TERMINATE]
