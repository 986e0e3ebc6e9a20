"""Streaming audio, for both adapters: ``stream`` and ``stream_file``, real-time pacing,
file formats, and ``read_wav_format``.

Pacing runs on the real clock (there is no virtual time over sockets): the audio is
short, and a bound holds with slack above (the machine may be busy), none below
(a frame never leaves before the audio ahead of it has played).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import anyio
import pytest

import aai_proto as aai
from tests.conformance._server import TERMINATE, Handler, Peer, dump, serve
from tests.conformance.conftest import Adapter, both
from tests.conformance.test_a_session import KEY, PARAMS, TERMINATION, answering
from tests.conftest import WavMaker

SLACK = 1.0
"""Seconds a paced stream may take beyond the audio's own length, on a busy machine."""
EARLY = 1e-3
"""Seconds a timer may fire early (asyncio rounds to its clock's resolution)."""
SAMPLE = b"\x01\x02"
"""The one 16-bit sample ``make_wav`` repeats."""


def timed(times: list[float]) -> Handler:
    """A server that records when each message arrives, and answers Terminate."""

    async def handler(peer: Peer) -> None:
        await peer.accept()
        while isinstance(message := await peer.get_message(), bytes) or message != TERMINATE:
            times.append(anyio.current_time())
        await peer.send_message(dump(TERMINATION))
        await peer.wait_close()

    return handler


def assert_paced(times: list[float], start: float, frame_seconds: float) -> None:
    """Frame ``n`` left once the ``n`` frames before it had played, and not much later."""
    for n, time in enumerate(times):
        assert start + n * frame_seconds - EARLY <= time < start + n * frame_seconds + SLACK


# -- stream_file --------------------------------------------------------------------------


@both
async def test_stream_file_in_real_time(adapter: Adapter, make_wav: WavMaker) -> None:
    path = make_wav(seconds=0.3)
    times: list[float] = []
    async with serve(timed(times)) as server:
        async with adapter.open_session(PARAMS, api_key=KEY, url=server.url) as session:
            start = anyio.current_time()
            await session.stream_file(path)
            took = anyio.current_time() - start
            assert await session.terminate() == TERMINATION
        await server.peer.closed.wait()
    assert 0.3 - EARLY <= took < 0.3 + SLACK  # it returns once the audio has played
    assert server.peer.received == [SAMPLE * 800] * 6 + [TERMINATE]
    assert_paced(times, start, 0.05)


@both
async def test_stream_file_fast(adapter: Adapter, make_wav: WavMaker) -> None:
    path = make_wav(seconds=1.025, rate=8000)
    params = aai.StreamingParams(sample_rate=8000)
    async with serve(answering()) as server:
        async with adapter.open_session(params, url=server.url, chunk_ms=100) as session:
            start = anyio.current_time()
            await session.stream_file(str(path), realtime=False)
            assert anyio.current_time() - start < 0.5  # paced, it would take 1.025 s
        await server.peer.closed.wait()
    # 100 ms frames of 8 kHz audio, and the 25 ms tail padded to 50 ms.
    assert server.peer.received == [
        *[SAMPLE * 800] * 10,
        SAMPLE * 200 + bytes(400),
        TERMINATE,
    ]


@pytest.mark.parametrize(
    ("wav", "params", "message"),
    [
        ({"channels": 2}, PARAMS, "speech.wav: 2-channel 16-bit audio; only mono 16-bit PCM"),
        ({"width": 1}, PARAMS, "speech.wav: 1-channel 8-bit audio; only mono 16-bit PCM"),
        (
            {"rate": 44100},
            PARAMS,
            "speech.wav holds pcm_s16le at 44100 Hz audio; "
            "the session expects pcm_s16le at 16000 Hz",
        ),
        (
            {"rate": 8000},
            aai.StreamingParams(sample_rate=8000, encoding="pcm_mulaw"),
            "speech.wav holds pcm_s16le at 8000 Hz audio; the session expects pcm_mulaw at 8000 Hz",
        ),
        (
            {},
            aai.StreamingParams(sample_rate=None, encoding="opus"),
            "speech.wav holds pcm_s16le at 16000 Hz audio; the session expects opus",
        ),
    ],
    ids=["stereo", "8-bit", "44100-Hz", "mu-law", "opus"],
)
@both
async def test_stream_file_checks_the_format_first(
    adapter: Adapter,
    make_wav: WavMaker,
    wav: dict[str, int],
    params: aai.StreamingParams,
    message: str,
) -> None:
    path = make_wav(**wav)
    async with serve(answering()) as server:
        async with adapter.open_session(params, url=server.url) as session:
            with pytest.raises(ValueError, match="^" + re.escape(f"{path.parent}/{message}")):
                await session.stream_file(path)
        await server.peer.closed.wait()
    assert server.peer.received == [TERMINATE]


@both
async def test_stream_file_reads_raw_audio(adapter: Adapter, tmp_path: Path) -> None:
    path = tmp_path / "speech.raw"
    path.write_bytes(b"\xff" * 2400)  # 300 ms of 8 kHz mu-law
    params = aai.StreamingParams(sample_rate=8000, encoding="pcm_mulaw")
    async with serve(answering()) as server:
        async with adapter.open_session(params, url=server.url) as session:
            start = anyio.current_time()
            await session.stream_file(path)
            took = anyio.current_time() - start
        await server.peer.closed.wait()
    assert 0.3 - EARLY <= took < 0.3 + SLACK
    assert server.peer.received == [b"\xff" * 400] * 6 + [TERMINATE]


@both
async def test_real_time_pacing_needs_pcm(adapter: Adapter, tmp_path: Path) -> None:
    path = tmp_path / "speech.pcm"
    path.write_bytes(b"opus bytes")
    params = aai.StreamingParams(sample_rate=None, encoding="opus")
    async with serve(answering()) as server:
        async with adapter.open_session(params, url=server.url) as session:
            with pytest.raises(ValueError, match=r"^real-time pacing needs PCM audio; opus has"):
                await session.stream_file(path)
            with pytest.raises(ValueError, match=r"^real-time pacing needs PCM audio; opus has"):
                await session.stream([b"opus bytes"])
            await session.stream_file(path, realtime=False)
        await server.peer.closed.wait()
    assert server.peer.received == [b"opus bytes", TERMINATE]


@both
async def test_a_missing_raw_file_is_an_error_at_once(adapter: Adapter, tmp_path: Path) -> None:
    async with serve(answering()) as server:
        async with adapter.open_session(PARAMS, api_key=KEY, url=server.url) as session:
            with pytest.raises(FileNotFoundError):
                await session.stream_file(tmp_path / "missing.raw")
        await server.peer.closed.wait()
    assert server.peer.received == [TERMINATE]


# -- stream: any source -------------------------------------------------------------------


async def microphone() -> AsyncIterator[bytes]:
    """Uneven chunks, as a device gives them: 150 ms at once, then 50 ms twice."""
    yield SAMPLE * 2400
    yield SAMPLE * 800
    yield SAMPLE * 800


def plain() -> Iterable[bytes]:
    """The same 250 ms, from a plain iterable, in two chunks."""
    return [SAMPLE * 2000, SAMPLE * 2000]


@pytest.mark.parametrize("source", [microphone, plain], ids=["async", "plain"])
@both
async def test_stream_paces_any_source_in_real_time(adapter: Adapter, source: object) -> None:
    # Uneven chunks: the frames still leave as the audio plays.
    times: list[float] = []
    async with serve(timed(times)) as server:
        async with adapter.open_session(PARAMS, api_key=KEY, url=server.url) as session:
            start = anyio.current_time()
            await session.stream(source())  # type: ignore[operator]
            took = anyio.current_time() - start
            assert await session.terminate() == TERMINATION
        await server.peer.closed.wait()
    assert 0.25 - EARLY <= took < 0.25 + SLACK
    assert server.peer.received == [SAMPLE * 800] * 5 + [TERMINATE]
    assert_paced(times, start, 0.05)


@both
async def test_stream_takes_a_plain_iterable_as_fast_as_it_goes(adapter: Adapter) -> None:
    chunks = [SAMPLE * 300, bytearray(SAMPLE * 500)] * 10  # 500 ms, in uneven pieces
    async with serve(answering()) as server:
        async with adapter.open_session(PARAMS, api_key=KEY, url=server.url) as session:
            start = anyio.current_time()
            await session.stream(chunks, realtime=False)
            assert anyio.current_time() - start < 0.25  # paced, it would take 0.5 s
        await server.peer.closed.wait()
    assert server.peer.received == [*[SAMPLE * 800] * 10, TERMINATE]


# -- read_wav_format (no session) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"", "truncated"), (b"RIFX not a wave file", "file does not start with RIFF id")],
    ids=["empty", "not-riff"],
)
def test_read_wav_format_rejects_other_files(
    adapter: Adapter, tmp_path: Path, content: bytes, problem: str
) -> None:
    path = tmp_path / "notes.wav"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not a PCM WAV file") as info:
        adapter.module.read_wav_format(path)
    assert str(info.value) == f"{path}: not a PCM WAV file ({problem})"


def test_read_wav_format(adapter: Adapter, make_wav: WavMaker, tmp_path: Path) -> None:
    read_wav_format = adapter.module.read_wav_format
    assert read_wav_format(make_wav(rate=22050)) == aai.AudioFormat(sample_rate=22050)
    with pytest.raises(ValueError, match="2-channel 16-bit audio"):
        read_wav_format(make_wav("stereo.wav", channels=2))
    with pytest.raises(FileNotFoundError):
        read_wav_format(tmp_path / "missing.wav")
