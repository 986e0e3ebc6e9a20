"""WAV files: their audio format, and sending their audio at the pace it plays.

Read with the stdlib ``wave`` module, which knows plain PCM WAV files only. The
file is read synchronously, one frame's worth at a time: a local file is fast
enough, and a thread per read would make virtual-time tests meaningless.
"""

from __future__ import annotations

import os
import wave
from typing import TYPE_CHECKING

import trio

from aai_proto import AudioFormat

if TYPE_CHECKING:
    from ._session import Session

__all__ = ["check_format", "read_wav_format", "stream_wav"]


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


async def stream_wav(
    session: Session, path: str | os.PathLike[str], *, chunk_ms: int, realtime: bool
) -> None:
    """Send a WAV file's audio through ``session``; see :meth:`Session.stream_file`."""
    with _open(path) as wav:
        check_format(path, _format(wav, path), session.audio_format)
        rate = wav.getframerate()
        block = max(1, rate * chunk_ms // 1000)
        if not realtime:
            # As fast as possible: read a second at a time, so that the frames of a
            # read leave together (one lock, one call to the core), not one by one.
            block = max(block, rate)
        start = trio.current_time()
        sent = 0
        while data := wav.readframes(block):
            await session.send_audio(data)
            sent += len(data) // 2
            if realtime:
                # Each frame leaves once the audio before it has played, as from a microphone.
                await trio.sleep_until(start + sent / rate)
