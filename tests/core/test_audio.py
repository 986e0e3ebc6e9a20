"""AudioFormat and AudioChunker: frames depend only on the bytes, never on the writes."""

from __future__ import annotations

import array
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aai_proto import MIN_CHUNK_MS, AudioChunker, AudioFormat, TailPolicy
from aai_proto.strategies import audio_writes


def test_format_arithmetic() -> None:
    pcm16 = AudioFormat()
    assert (pcm16.bytes_per_sample, pcm16.bytes_per_ms, pcm16.frame_size(50)) == (2, 32.0, 1600)
    assert pcm16.duration_ms(1600) == 50.0
    assert pcm16.silence == b"\x00\x00"
    mulaw = AudioFormat(encoding="pcm_mulaw", sample_rate=8000)
    assert (mulaw.bytes_per_sample, mulaw.frame_size(50), mulaw.silence) == (1, 400, b"\xff")
    odd = AudioFormat(sample_rate=11025)
    # 551.25 samples in 50 ms: a frame must hold whole samples and last at least 50 ms.
    assert odd.frame_size(50) == 552 * 2
    assert odd.duration_ms(odd.frame_size(50)) >= 50
    assert AudioFormat(sample_rate=44100).frame_size(1000) == 88200


def test_compressed_formats_have_no_sample_arithmetic() -> None:
    opus = AudioFormat(encoding="opus", sample_rate=None)
    assert not opus.is_pcm
    with pytest.raises(ValueError, match="opus audio has no fixed bytes per sample"):
        _ = opus.bytes_per_sample
    with pytest.raises(ValueError, match="needs a positive integer sample_rate"):
        AudioFormat(sample_rate=None)
    with pytest.raises(ValueError, match="needs a positive integer sample_rate"):
        AudioFormat(encoding="pcm_mulaw", sample_rate=0)


def test_exact_frames() -> None:
    chunker = AudioChunker(AudioFormat(sample_rate=8000), chunk_ms=50)  # 800-byte frames
    data = bytes(range(256)) * 10  # 2560 bytes
    assert chunker.frame_bytes == 800
    assert chunker.feed(data[:700]) == []
    assert chunker.buffered == 700
    assert chunker.feed(data[700:1700]) == [data[:800], data[800:1600]]
    assert chunker.buffered == 100
    assert chunker.feed(data[1700:]) == [data[1600:2400]]
    assert chunker.buffered == 160
    assert chunker.flush() == [data[2400:] + b"\x00" * 640]
    assert chunker.flush() == []
    assert chunker.buffered == 0


def test_a_write_of_exactly_one_frame_is_not_copied() -> None:
    chunker = AudioChunker(AudioFormat())
    frame = bytes(1600)
    assert chunker.feed(frame)[0] is frame
    mutable = bytearray(1600)
    out = chunker.feed(mutable)[0]
    mutable[0] = 1  # the caller's buffer may change later; the frame must not
    assert out == bytes(1600)


@pytest.mark.parametrize(
    ("tail", "fmt", "pending", "expected"),
    [
        ("pad", AudioFormat(), b"\x01\x02\x03", b"\x01\x02\x03" + b"\x00" * 1597),
        ("short", AudioFormat(), b"\x01\x02\x03", b"\x01\x02\x03\x00"),
        ("short", AudioFormat(), b"\x01\x02", b"\x01\x02"),
        (
            "pad",
            AudioFormat(encoding="pcm_mulaw", sample_rate=8000),
            b"\x10",
            b"\x10" + b"\xff" * 399,
        ),
    ],
)
def test_tail_policy(tail: TailPolicy, fmt: AudioFormat, pending: bytes, expected: bytes) -> None:
    chunker = AudioChunker(fmt, tail=tail)
    assert chunker.feed(pending) == []
    assert chunker.flush() == [expected]


def test_pad_keeps_a_tail_already_50_ms_long() -> None:
    chunker = AudioChunker(AudioFormat(), chunk_ms=100)  # 3200-byte frames
    chunker.feed(bytes(2000))
    assert chunker.flush() == [bytes(2000)]


def test_any_bytes_like_input() -> None:
    samples = array.array("h", range(1600))  # 3200 bytes of int16
    chunker = AudioChunker(AudioFormat())
    frames = chunker.feed(samples)
    assert frames == [samples.tobytes()[:1600], samples.tobytes()[1600:]]
    assert chunker.feed(memoryview(samples.tobytes())[:10]) == []
    assert chunker.buffered == 10
    with pytest.raises(TypeError, match="audio must be bytes-like, not str"):
        chunker.feed("abc")  # type: ignore[arg-type]
    assert chunker.buffered == 10


def test_compressed_writes_pass_through_whole() -> None:
    chunker = AudioChunker(AudioFormat(encoding="opus", sample_rate=None))
    assert chunker.frame_bytes == 0
    assert chunker.feed(b"\x01\x02\x03") == [b"\x01\x02\x03"]
    assert chunker.feed(b"") == []
    assert chunker.flush() == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"chunk_ms": 49}, "chunk_ms must be an integer from 50 to 1000, got 49"),
        ({"chunk_ms": 1001}, "got 1001"),
        ({"chunk_ms": 50.0}, "got 50.0"),
        ({"tail": "drop"}, "tail must be 'pad' or 'short', got 'drop'"),
    ],
)
def test_bad_chunker_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        AudioChunker(AudioFormat(), **kwargs)


formats = st.sampled_from(
    [
        AudioFormat(),
        AudioFormat(sample_rate=8000),
        AudioFormat(sample_rate=11025),
        AudioFormat(encoding="pcm_mulaw", sample_rate=8000),
    ]
)


@given(
    audio_writes(max_bytes=20_000),
    formats,
    st.sampled_from([50, 51, 100, 1000]),
    st.sampled_from(["pad", "short"]),
)
def test_frames_depend_only_on_the_bytes(
    writes: tuple[bytes, list[int]], fmt: AudioFormat, chunk_ms: int, tail: TailPolicy
) -> None:
    data, sizes = writes
    chunker = AudioChunker(fmt, chunk_ms=chunk_ms, tail=tail)
    frames: list[bytes] = []
    offset = 0
    for size in sizes:
        frames += chunker.feed(data[offset : offset + size])
        offset += size
    tail_frames = chunker.flush()

    whole = AudioChunker(fmt, chunk_ms=chunk_ms, tail=tail)
    assert frames + tail_frames == whole.feed(data) + whole.flush()

    size = fmt.frame_size(chunk_ms)
    assert all(len(frame) == size for frame in frames)
    assert fmt.duration_ms(size) >= chunk_ms
    assert len(tail_frames) <= 1
    joined = b"".join(frames + tail_frames)
    assert joined[: len(data)] == data
    padding = joined[len(data) :]
    assert set(padding) <= set(fmt.silence)
    for frame in tail_frames:
        assert 0 < len(frame) < size or (
            tail == "pad" and len(frame) == fmt.frame_size(MIN_CHUNK_MS)
        )
        assert len(frame) % fmt.bytes_per_sample == 0
        if tail == "pad":
            assert fmt.duration_ms(len(frame)) >= MIN_CHUNK_MS
        else:
            # Only the partial sample is completed.
            assert len(padding) < fmt.bytes_per_sample
