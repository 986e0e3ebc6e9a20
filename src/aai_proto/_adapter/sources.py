"""Audio sources for the adapters: WAV and raw files, any iterable of bytes, and pacing.

Strategy: a source is turned into an iterable of byte chunks in the session's
format (a WAV file is checked against it first); :func:`pace` sends the chunks
through whatever ``send`` it is given, and with ``realtime`` lets each frame
leave only once the audio before it has played, as from a microphone. The
runtime's clock is a parameter (``now`` and ``sleep_until``), so that trio and
asyncio share this, and nothing here knows the session. Files are read
synchronously, a chunk at a time: a local file is fast enough, and a thread per
read would make virtual-time tests meaningless. Not part of the sans-IO core,
which never imports it.
"""

from __future__ import annotations

import os
import wave
from collections.abc import AsyncIterable, Awaitable, Callable, Generator, Iterable
from typing import Final

from aai_proto import AudioFormat

__all__ = [
    "RAW_SUFFIXES",
    "Chunk",
    "Chunks",
    "check_format",
    "file_chunks",
    "pace",
    "read_wav_format",
]

RAW_SUFFIXES: Final = (".raw", ".pcm")
"""File names ending so hold raw audio in the session's encoding; any other is read as WAV."""

_FAST_READ_MS: Final = 1000
# Without real-time pacing a file is read a second at a time, so that the frames of
# a read leave together (one lock, one call to the core), not one by one.

Chunk = bytes | bytearray | memoryview
Chunks = Iterable[Chunk] | AsyncIterable[Chunk]
"""Audio to send: chunks of any size, from a plain or an async iterable."""


def _open(path: str | os.PathLike[str]) -> wave.Wave_read:
    try:
        return wave.open(os.fspath(path), "rb")
    except (wave.Error, EOFError) as exc:
        problem = str(exc) or "truncated"
        raise ValueError(f"{os.fspath(path)}: not a PCM WAV file ({problem})") from None


def _format(wav: wave.Wave_read, path: str | os.PathLike[str]) -> AudioFormat:
    channels, width = wav.getnchannels(), wav.getsampwidth()
    if (channels, width) != (1, 2):
        raise ValueError(
            f"{os.fspath(path)}: {channels}-channel {8 * width}-bit audio; "
            "only mono 16-bit PCM (pcm_s16le) can be streamed"
        )
    return AudioFormat(encoding="pcm_s16le", sample_rate=wav.getframerate())


def _describe(fmt: AudioFormat) -> str:
    return f"{fmt.encoding} at {fmt.sample_rate} Hz" if fmt.sample_rate else fmt.encoding


def check_format(path: str | os.PathLike[str], fmt: AudioFormat, expected: AudioFormat) -> None:
    """Raise ``ValueError`` unless a file's audio format ``fmt`` is the one ``expected``."""
    if fmt != expected:
        raise ValueError(
            f"{os.fspath(path)} holds {_describe(fmt)} audio; "
            f"the session expects {_describe(expected)}"
        )


def read_wav_format(path: str | os.PathLike[str]) -> AudioFormat:
    """The audio format of a WAV file that can be streamed: mono 16-bit PCM.

    Raises ``ValueError`` for anything else (not a WAV file, stereo, 8-bit,
    compressed) and ``OSError`` if the file cannot be read.
    """
    with _open(path) as wav:
        return _format(wav, path)


def _read_size(fmt: AudioFormat, chunk_ms: int, realtime: bool) -> int:
    """Bytes per read: a frame's worth paced, a second's worth otherwise (compressed: 32 KiB)."""
    if not fmt.is_pcm:
        return 1 << 15
    return fmt.frame_size(chunk_ms if realtime else max(chunk_ms, _FAST_READ_MS))


def file_chunks(
    path: str | os.PathLike[str], fmt: AudioFormat, *, chunk_ms: int, realtime: bool
) -> Generator[bytes, None, None]:
    """The audio of a file, in chunks: a WAV file (checked to hold ``fmt``), or raw audio.

    A name ending in ``.raw`` or ``.pcm`` is raw audio in ``fmt``'s encoding. The
    WAV header is read (and a mismatch raised) before the first chunk is yielded.
    """
    size = _read_size(fmt, chunk_ms, realtime)
    # Problems are raised now, at the call; the file is opened again, lazily, by the
    # generator, so that one never started holds no open file.
    if os.fspath(path).lower().endswith(RAW_SUFFIXES):
        open(path, "rb").close()
        return _read_raw(path, size)
    check_format(path, read_wav_format(path), fmt)
    return _read_wav(path, size // 2)


def _read_raw(path: str | os.PathLike[str], size: int) -> Generator[bytes, None, None]:
    with open(path, "rb") as file:
        while data := file.read(size):
            yield data


def _read_wav(path: str | os.PathLike[str], frames: int) -> Generator[bytes, None, None]:
    with _open(path) as wav:
        while data := wav.readframes(frames):
            yield data


async def pace(
    send: Callable[[Chunk], Awaitable[None]],
    source: Chunks,
    fmt: AudioFormat,
    *,
    chunk_ms: int,
    realtime: bool,
    now: Callable[[], float],
    sleep_until: Callable[[float], Awaitable[object]],
) -> None:
    """Send every chunk of ``source`` through ``send``; with ``realtime``, no faster than it plays.

    Paced, a chunk longer than ``chunk_ms`` leaves a frame at a time, each once the
    audio before it has played (from the first chunk on); a source slower than real
    time (a microphone) is never held back. Pacing needs PCM: for compressed audio
    ``realtime`` raises ``ValueError`` before anything is sent.
    """
    if realtime and not fmt.is_pcm:
        raise ValueError(
            f"real-time pacing needs PCM audio; {fmt.encoding} has no fixed rate "
            "(stream it with realtime=False, at the pace it comes)"
        )
    step = send if not realtime else _Pacer(send, fmt, chunk_ms, now, sleep_until).send
    if isinstance(source, AsyncIterable):
        async for data in source:
            await step(data)
    else:
        for data in source:
            await step(data)


class _Pacer:
    """Sends audio a frame at a time, each once the audio before it has played."""

    def __init__(
        self,
        send: Callable[[Chunk], Awaitable[None]],
        fmt: AudioFormat,
        chunk_ms: int,
        now: Callable[[], float],
        sleep_until: Callable[[float], Awaitable[object]],
    ) -> None:
        self._send = send
        self._now = now
        self._sleep_until = sleep_until
        self._fmt = fmt
        self._frame = fmt.frame_size(chunk_ms)
        self._start: float | None = None
        self._sent = 0

    async def send(self, data: Chunk) -> None:
        if self._start is None:
            self._start = self._now()
        view = memoryview(data)
        for offset in range(0, len(view), self._frame):
            piece = bytes(view[offset : offset + self._frame])
            await self._send(piece)
            self._sent += len(piece)
            await self._sleep_until(self._start + self._fmt.duration_ms(self._sent) / 1000)
