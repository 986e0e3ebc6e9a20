"""Frames that leave a batch per write: the same messages, in the same order, as one by one.

The adapters write several frames at once where their WebSocket library lets them
(``aai_proto._adapter.frames``), and one ``send`` per frame where it does not; the
server must see the same thing either way.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from wsproto.frame_protocol import FrameProtocol, Opcode

import aai_proto as aai
from aai_proto._adapter import frames
from aai_proto._adapter.frames import BATCH_BYTES, batches, encode_client_frames
from tests.conformance._server import TERMINATE, serve
from tests.conformance.conftest import Adapter, both
from tests.conformance.test_a_session import FRAME, KEY, PARAMS, TERMINATION, answering

# -- the frames ---------------------------------------------------------------------


def _decode(data: bytes) -> list[tuple[Opcode, bytes | str]]:
    """What a server reads from ``data`` (wsproto checks the framing and the masks)."""
    server = FrameProtocol(client=False, extensions=[])
    server.receive_bytes(data)
    out: list[tuple[Opcode, bytes | str]] = []
    for frame in server.received_frames():
        assert frame.frame_finished
        assert frame.message_finished
        payload = frame.payload
        assert isinstance(payload, (str, bytes, bytearray))
        out.append((frame.opcode, payload if isinstance(payload, str) else bytes(payload)))
    return out


@pytest.mark.parametrize("size", [0, 1, 125, 126, 1600, 65535, 65536, 70001])
def test_a_binary_frame_of_each_length_encoding(size: int) -> None:
    payload = os.urandom(size)
    data = encode_client_frames([payload])
    header = {0: 2, 1: 2, 125: 2, 126: 4, 1600: 4, 65535: 4}.get(size, 10)
    assert len(data) == header + 4 + size  # the shortest length encoding, and the mask key
    assert data[0] == 0x82  # FIN, binary
    assert _decode(data) == [(Opcode.BINARY, payload)]


def test_text_and_binary_messages_in_order() -> None:
    messages: list[bytes | str] = ['{"type":"Terminate"}', b"\x01\x02\x03", "é" * 100, b""]
    assert _decode(encode_client_frames(messages)) == [
        (Opcode.TEXT, '{"type":"Terminate"}'),
        (Opcode.BINARY, b"\x01\x02\x03"),
        (Opcode.TEXT, "é" * 100),
        (Opcode.BINARY, b""),
    ]


@pytest.mark.parametrize("mask", [frames._translate_mask, frames._mask])
@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 1600, 70001])
def test_both_maskings_xor_each_byte_with_the_key(
    mask: Callable[[bytes, bytes], bytes | bytearray], size: int
) -> None:
    # frames._mask is websockets' compiled apply_mask where it is built, else the
    # pure one: both must give RFC 6455's XOR, byte i with key[i % 4].
    payload, key = os.urandom(size), os.urandom(4)
    assert bytes(mask(payload, key)) == bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def test_frames_masked_without_websockets_read_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frames, "_mask", frames._translate_mask)
    messages: list[bytes | str] = [os.urandom(FRAME), "text", os.urandom(70001)]
    assert [payload for _, payload in _decode(encode_client_frames(messages))] == messages


def test_every_frame_is_masked_with_a_key_of_its_own() -> None:
    payload = bytes(FRAME)  # zeros: the masked payload is the key, repeated
    data = encode_client_frames([payload] * 20)
    step = 4 + 4 + FRAME
    keys = [data[i + 4 : i + 8] for i in range(0, len(data), step)]
    for index, key in enumerate(keys):
        start = index * step + 8
        assert data[start : start + FRAME] == key * (FRAME // 4)
    assert len(set(keys)) == 20  # (a repeat among 20 random 32-bit keys: about 4e-8)


def test_batches_keep_the_order_and_the_limit() -> None:
    frames: list[bytes | str] = [bytes(FRAME)] * 50
    runs = list(batches(frames, 10 * FRAME))
    assert [len(run) for run in runs] == [10, 10, 10, 10, 10]
    assert [frame for run in runs for frame in run] == frames
    mixed: list[bytes | str] = [b"a" * 5, b"b" * 20, "c" * 3, b"d" * 4, b"e", b"f"]
    assert list(batches(mixed, 8)) == [
        [b"a" * 5],
        [b"b" * 20],  # longer than the limit: alone
        ["c" * 3, b"d" * 4, b"e"],  # 8 bytes: up to the limit
        [b"f"],
    ]
    assert list(batches([], 8)) == []
    assert BATCH_BYTES == 1 << 16


# -- both adapters --------------------------------------------------------------------


AUDIO = bytes(range(256)) * 500  # 128,000 bytes: 80 frames, in two batches and a bit


async def _send_and_terminate(adapter: Adapter) -> list[str | bytes]:
    async with serve(answering()) as server:
        async with adapter.open_session(PARAMS, api_key=KEY, url=server.url) as session:
            await session.send_audio(AUDIO)
            await session.send_audio(AUDIO[:FRAME])  # a single frame
            assert await session.terminate() == TERMINATION
        await server.peer.closed.wait()
    return server.peer.received


def _expected() -> list[str | bytes]:
    audio = AUDIO + AUDIO[:FRAME]
    return [audio[i : i + FRAME] for i in range(0, len(audio), FRAME)] + [TERMINATE]


@both
async def test_a_batched_send_arrives_frame_by_frame(adapter: Adapter) -> None:
    assert await _send_and_terminate(adapter) == _expected()


@pytest.fixture
def without_batching(adapter: Adapter, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the adapter send one frame per call, as where its library does not allow more."""
    monkeypatch.setattr(adapter.module._session.Session, "_batching", False)


@both
async def test_without_batching_the_frames_go_one_by_one(
    adapter: Adapter, without_batching: None
) -> None:
    assert await _send_and_terminate(adapter) == _expected()


@both
async def test_a_send_of_nothing_sends_nothing(adapter: Adapter) -> None:
    async with serve(answering()) as server:
        async with adapter.open_session(PARAMS, api_key=KEY, url=server.url) as session:
            await session.send_audio(b"")
            assert session.state is aai.State.STREAMING
        await server.peer.closed.wait()
    assert server.peer.received == [TERMINATE]
