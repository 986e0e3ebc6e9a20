"""A session that goes well, and the calls a caller may make on it, for both adapters."""

from __future__ import annotations

import anyio
import pytest

import aai_proto as aai
from tests.conformance._server import BEGIN, TERMINATE, Peer, Server, dump, serve
from tests.conformance.conftest import Adapter, both

KEY = "sk-test-SECRET-KEY-0123"
TOKEN = "tok-SECRET-TOKEN-4567"
PARAMS = aai.StreamingParams(sample_rate=16000)
FRAME = 1600  # bytes in 50 ms of 16 kHz pcm_s16le
TERMINATION = aai.Termination(audio_duration_seconds=3, session_duration_seconds=4)


def turn(order: int, text: str, *, end: bool = False) -> aai.Turn:
    return aai.Turn(
        turn_order=order,
        turn_is_formatted=end,
        end_of_turn=end,
        transcript=text,
        end_of_turn_confidence=1.0 if end else 0.0,
        words=(),
    )


def answering(*before_end: str):  # type: ignore[no-untyped-def]
    """A server that answers Terminate with ``before_end`` messages, then Termination."""

    async def handler(peer: Peer) -> None:
        await peer.accept()
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
