"""Audio formats, and cutting a stream of writes into legal binary frames.

Strategy: the service wants every binary frame to hold 50-1000 ms of audio and to
never split a sample, while callers write whatever sizes their sound card or file
reader hands them. ``AudioChunker`` turns any sequence of writes into frames of
exactly ``chunk_ms``, so the frames depend only on the bytes, never on how they were
split. Its cost is linear in the bytes given: it keeps at most one partial frame,
and copies each byte once on its way to a frame (a write that is exactly one frame,
with nothing pending, goes out without a copy).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final, Literal, final

import attrs

from ._params import PCM_ENCODINGS, Encoding, StreamingParams

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = [
    "MAX_CHUNK_MS",
    "MIN_CHUNK_MS",
    "AudioChunker",
    "AudioFormat",
    "TailPolicy",
]

MIN_CHUNK_MS: Final = 50
"""The shortest frame the service accepts for long, in milliseconds."""
MAX_CHUNK_MS: Final = 1000
"""The longest frame the service accepts, in milliseconds."""

TailPolicy = Literal["pad", "short"]
"""What to do with a final frame shorter than 50 ms when the stream ends.

``"pad"`` (the default) lengthens it to 50 ms with silence, so every frame is legal;
``"short"`` sends it as it is, as the official SDKs do (the service tolerates one).
"""

_BYTES_PER_SAMPLE: Final = {"pcm_s16le": 2, "pcm_mulaw": 1}
# Digital silence: sample value 0. In mu-law, 0 is encoded as 0xFF.
_SILENCE: Final = {"pcm_s16le": b"\x00", "pcm_mulaw": b"\xff"}


@final
@attrs.frozen(kw_only=True)
class AudioFormat:
    """The format of the audio a session carries: mono, ``encoding`` at ``sample_rate`` Hz."""

    encoding: Encoding = "pcm_s16le"
    sample_rate: int | None = 16000

    def __attrs_post_init__(self) -> None:
        if self.encoding in PCM_ENCODINGS and (
            type(self.sample_rate) is not int or self.sample_rate <= 0
        ):
            raise ValueError(f"{self.encoding} audio needs a positive integer sample_rate")

    @classmethod
    def from_params(cls, params: StreamingParams) -> AudioFormat:
        """The audio format a session with these parameters expects."""
        return cls(encoding=params.encoding, sample_rate=params.sample_rate)

    @property
    def is_pcm(self) -> bool:
        """True for raw PCM encodings, which are cut by duration; others are sent as written."""
        return self.encoding in PCM_ENCODINGS

    @property
    def bytes_per_sample(self) -> int:
        """Bytes of one (mono) sample: 2 for ``pcm_s16le``, 1 for ``pcm_mulaw``."""
        self._require_pcm()
        return _BYTES_PER_SAMPLE[self.encoding]

    @property
    def bytes_per_ms(self) -> float:
        """Bytes of one millisecond of audio (not always a whole number)."""
        # On the path of every frame a server checks: one call, not four.
        rate = self._rate()
        return rate * _BYTES_PER_SAMPLE[self.encoding] / 1000

    @property
    def silence(self) -> bytes:
        """One sample of digital silence."""
        self._require_pcm()
        return _SILENCE[self.encoding] * self.bytes_per_sample

    def duration_ms(self, nbytes: int) -> float:
        """How many milliseconds of audio ``nbytes`` bytes hold.

        One division of whole numbers, so a whole number of milliseconds comes out
        exact at any rate (dividing by ``bytes_per_ms``, itself rounded, made a
        1000 ms frame at 8001 Hz 1000.0000000000001 ms: too long for the service).
        """
        return nbytes * 1000 / (self._rate() * self.bytes_per_sample)

    def frame_size(self, ms: int) -> int:
        """Bytes of the shortest whole-sample frame that lasts at least ``ms`` milliseconds."""
        return math.ceil(self._rate() * ms / 1000) * self.bytes_per_sample

    def _rate(self) -> int:
        self._require_pcm()
        assert self.sample_rate is not None  # checked at construction for PCM
        return self.sample_rate

    def _require_pcm(self) -> None:
        if not self.is_pcm:
            raise ValueError(f"{self.encoding} audio has no fixed bytes per sample")


def _as_bytes_view(data: Buffer) -> bytes | memoryview:
    if type(data) is bytes:
        return data
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError(f"audio must be bytes-like, not {type(data).__name__}") from None
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


@final
class AudioChunker:
    """Cuts audio writes into frames of exactly ``chunk_ms`` milliseconds.

    ``feed(data)`` returns the frames completed by ``data``; ``flush()`` returns the
    last, shorter frame (per ``tail``) at the end of the stream. The frames depend only
    on the concatenation of the writes. A frame never splits a sample; a stream that
    ends inside a sample has that sample completed with silence. Audio in a
    compressed encoding (``opus``, ``ogg_opus``, ``aac``) is not cut: each non-empty
    write is one frame, as the service expects one packet per message.
    """

    def __init__(self, fmt: AudioFormat, *, chunk_ms: int = 50, tail: TailPolicy = "pad") -> None:
        if type(chunk_ms) is not int or not MIN_CHUNK_MS <= chunk_ms <= MAX_CHUNK_MS:
            raise ValueError(
                f"chunk_ms must be an integer from {MIN_CHUNK_MS} to {MAX_CHUNK_MS}, "
                f"got {chunk_ms!r}"
            )
        if tail not in ("pad", "short"):
            raise ValueError(f"tail must be 'pad' or 'short', got {tail!r}")
        self.format = fmt
        self.chunk_ms = chunk_ms
        self.tail: TailPolicy = tail
        self._size = fmt.frame_size(chunk_ms) if fmt.is_pcm else 0
        self._pending = bytearray()

    @property
    def frame_bytes(self) -> int:
        """Bytes in each full frame (0 for compressed encodings, which are not cut)."""
        return self._size

    @property
    def buffered(self) -> int:
        """Bytes waiting for the rest of their frame."""
        return len(self._pending)

    def feed(self, data: Buffer) -> list[bytes]:
        """Take a write; return the frames it completes, in order."""
        view = _as_bytes_view(data)
        size = self._size
        n = len(view)
        if not size:
            return [bytes(view)] if n else []
        pending = self._pending
        if pending:
            need = size - len(pending)
            if n < need:
                pending += view
                return []
            pending += view[:need]
            out = [bytes(pending)]
            pending.clear()
            start = need
        elif n == size:
            return [bytes(view)]  # bytes(b) is b itself: no copy
        else:
            out = []
            start = 0
        if n - start >= size:
            mv = memoryview(view)
            end = start + (n - start) // size * size
            out.extend([mv[i : i + size].tobytes() for i in range(start, end, size)])
            start = end
        if start < n:
            pending += view[start:]
        return out

    def _take_pending(self) -> bytes:
        """Return the partial frame and forget it (``Client`` keeps it on its fast path)."""
        rest = bytes(self._pending)
        self._pending.clear()
        return rest

    def flush(self) -> list[bytes]:
        """End the stream: return the last frame (or nothing) as the ``tail`` policy says."""
        pending = self._pending
        if not pending:
            return []
        silence = self.format.silence
        width = len(silence)
        if len(pending) % width:
            pending += silence[len(pending) % width :]
        if self.tail == "pad":
            shortest = self.format.frame_size(MIN_CHUNK_MS)
            if len(pending) < shortest:
                pending += silence * ((shortest - len(pending)) // width)
        frame = bytes(pending)
        pending.clear()
        return [frame]
