"""Making a plausible recorded session from a WAV file and its transcript.

Strategy: nothing here listens to the words; the timing comes from the audio's
energy and the words come from the text. Three steps, each a pure function:

1. **Speech regions.** The audio is cut into 10 ms frames and each frame's level
   (dBFS) is compared with a threshold set between the file's noise floor and its
   peak. Runs of loud frames separated by less than ``MERGE_GAP_MS`` are one region
   (stop consonants and short breaths do not split a phrase); regions shorter than
   ``MIN_REGION_MS`` are clicks and are dropped.
2. **Turns and words.** Regions separated by ``TURN_GAP_MS`` or more belong to
   different turns. The text's words are shared among the turns (one sentence per
   turn when the counts agree, otherwise in proportion to speaking time), then
   among each turn's regions the same way (one phrase per region when the counts
   agree), and inside a region in proportion to each word's length.
3. **Messages.** The client streams the audio in real time, 50 ms frames; each
   server message is placed after the audio it depends on, plus a latency the real
   service shows. Partial ``Turn`` messages grow word by word (classic
   Universal-Streaming) or come at pauses (U3); a turn ends once enough silence
   follows its last word (400 ms classic, 300 ms U3: ``_EOT_SILENCE_MS``), or when
   the client sends ``Terminate``, whichever comes first.

Everything is deterministic: the numbers a real server would vary (confidences,
the session id) come from a SHA-256 of the inputs, never from a clock or a random
generator, so the same inputs give a byte-identical file.
"""

from __future__ import annotations

import array
import hashlib
import math
import os
import sys
import unicodedata
import uuid
import wave
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal, final

import attrs

from aai_proto import AudioChunker, AudioFormat

from ._session import (
    ClientAudio,
    ClientMessage,
    Close,
    Entry,
    Header,
    RecordedSession,
    Request,
    ServerMessage,
)

__all__ = [
    "ModelStyle",
    "SpeechRegion",
    "SynthesisError",
    "audio_ref_for",
    "detect_speech",
    "synthesize",
]

ModelStyle = Literal["universal", "u3"]
"""Which model's Turn evolution to imitate: classic Universal-Streaming, or U3."""

_MODELS: Final[Mapping[str, str]] = {
    "universal": "universal-streaming-english",
    "u3": "u3-rt-pro",
}

# -- speech detection ----------------------------------------------------------------

FRAME_MS: Final = 10
"""Length of the frames whose level is measured."""
MERGE_GAP_MS: Final = 150
"""Quieter stretches shorter than this do not end a speech region."""
MIN_REGION_MS: Final = 60
"""Loud stretches shorter than this (after merging) are clicks, not speech."""
TURN_GAP_MS: Final = 600
"""A pause at least this long between regions ends a turn."""

_SILENT_DB: Final = -100.0  # the level given to a frame of digital silence
_QUIET_PEAK_DB: Final = -60.0  # a file whose loudest frame is quieter holds no speech
_FLAT_DB: Final = 6.0  # peak and floor this close: the whole file is one sound
_RELATIVE: Final = 0.25  # threshold at this fraction of the floor-to-peak range...
_BELOW_PEAK_DB: Final = 40.0  # ...but never more than this below the peak


@final
@attrs.frozen(kw_only=True)
class SpeechRegion:
    """A stretch of speech, in milliseconds from the start of the audio."""

    start_ms: int
    end_ms: int

    @property
    def duration_ms(self) -> int:
        """How long the region lasts."""
        return self.end_ms - self.start_ms


class SynthesisError(ValueError):
    """The audio or the text can't be made into a session.

    ``path`` names the audio file and ``problem`` says what is wrong; ``str()``
    reads ``<path>: <problem>``.
    """

    path: str
    problem: str

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def _frame_levels(samples: Sequence[int], frame: int) -> list[float]:
    levels = []
    for start in range(0, len(samples), frame):
        chunk = samples[start : start + frame]
        power = sum(x * x for x in chunk) / len(chunk)
        if power == 0:
            levels.append(_SILENT_DB)
        else:
            levels.append(max(_SILENT_DB, 10 * math.log10(power / 32768.0**2)))
    return levels


def detect_speech(samples: Sequence[int], sample_rate: int) -> tuple[SpeechRegion, ...]:
    """Find the speech regions of mono 16-bit audio by its energy.

    ``samples`` are signed 16-bit sample values. A 10 ms frame is loud when its
    level reaches a threshold a quarter of the way from the noise floor (the 10th
    percentile of the frame levels) to the peak, and at most 40 dB below the
    peak. Loud runs closer than 150 ms are merged; regions shorter than 60 ms are
    dropped. Audio whose peak is under -60 dBFS has no speech; audio whose level
    never varies by 6 dB is one region from end to end.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    n = len(samples)
    if n == 0:
        return ()
    frame = max(1, sample_rate * FRAME_MS // 1000)
    levels = _frame_levels(samples, frame)
    peak = max(levels)
    if peak < _QUIET_PEAK_DB:
        return ()
    floor = sorted(levels)[len(levels) // 10]

    def ms(sample: int, *, up: bool) -> int:
        q, r = divmod(sample * 1000, sample_rate)
        return q + (1 if up and r else 0)

    if peak - floor < _FLAT_DB:
        return (SpeechRegion(start_ms=0, end_ms=ms(n, up=True)),)
    threshold = max(floor + _RELATIVE * (peak - floor), peak - _BELOW_PEAK_DB)

    runs: list[list[int]] = []  # [first sample, end sample) of each loud run
    for index, level in enumerate(levels):
        if level < threshold:
            continue
        start, end = index * frame, min(n, (index + 1) * frame)
        if runs and runs[-1][1] == start:
            runs[-1][1] = end
        else:
            runs.append([start, end])
    merged: list[list[int]] = []
    for run in runs:
        if merged and (run[0] - merged[-1][1]) * 1000 < MERGE_GAP_MS * sample_rate:
            merged[-1][1] = run[1]
        else:
            merged.append(run)
    regions = (SpeechRegion(start_ms=ms(a, up=False), end_ms=ms(b, up=True)) for a, b in merged)
    return tuple(r for r in regions if r.duration_ms >= MIN_REGION_MS)


# -- reading the audio -----------------------------------------------------------------


@attrs.frozen
class _Audio:
    pcm: bytes
    samples: array.array[int]
    sample_rate: int


def _read_wav(path: Path) -> _Audio:
    name = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SynthesisError(name, f"can't read the audio file: {exc.strerror}") from None
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise SynthesisError(name, "not a WAV file (no RIFF/WAVE header)")
    # The format chunk is checked by hand: the wave module rejects some formats
    # (float, A-law) with messages that do not say which format it found.
    fmt_tag = _wav_format_tag(data)
    if fmt_tag is not None and fmt_tag not in (1, 0xFFFE):
        raise SynthesisError(
            name, f"WAV audio must be integer PCM, this one is format {fmt_tag:#06x}"
        )
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            pcm = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise SynthesisError(name, f"not a readable PCM WAV file: {exc}") from None
    if channels != 1:
        raise SynthesisError(name, f"audio must be mono, this file has {channels} channels")
    if width != 2:
        raise SynthesisError(
            name, f"audio must be 16-bit PCM (pcm_s16le), this file is {8 * width}-bit"
        )
    if rate < 8000:
        raise SynthesisError(name, f"sample rate must be at least 8000 Hz, this file has {rate}")
    pcm = pcm[: len(pcm) // 2 * 2]
    if not pcm:
        raise SynthesisError(name, "the file holds no audio")
    samples = array.array("h")
    samples.frombytes(pcm)
    if sys.byteorder == "big":  # pragma: no cover - WAV data is little-endian
        samples.byteswap()
    return _Audio(pcm, samples, rate)


def _wav_format_tag(data: bytes) -> int | None:
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if cid == b"fmt ":
            return int.from_bytes(data[pos + 8 : pos + 10], "little") if size >= 2 else None
        pos += 8 + size + (size & 1)
    return None


# -- words ------------------------------------------------------------------------------


@attrs.frozen
class _Token:
    text: str  # as written in the transcript, punctuation and case kept
    plain: str  # lowercase, without surrounding punctuation: what an unformatted turn shows

    @property
    def weight(self) -> int:
        return len(self.plain) + 2


def _is_wordlike(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LN"


def _plain(text: str) -> str:
    start, end = 0, len(text)
    while start < end and not _is_wordlike(text[start]):
        start += 1
    while end > start and not _is_wordlike(text[end - 1]):
        end -= 1
    return text[start:end].lower()


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pending = ""  # punctuation written before the first word
    for part in text.split():
        plain = _plain(part)
        if not plain:
            # Punctuation standing alone ("—", "&") joins a neighbouring word: a word's
            # text never holds a space.
            if tokens:
                tokens[-1] = _Token(tokens[-1].text + part, tokens[-1].plain)
            else:
                pending += part
            continue
        tokens.append(_Token(pending + part, plain))
        pending = ""
    return tokens


_SENTENCE_END: Final = tuple(".!?…")
_PHRASE_END: Final = (*_SENTENCE_END, ",", ";", ":", "\u2014", "\u2013")  # em, en dash


def _formatted(tokens: Sequence[_Token]) -> list[str]:
    """The tokens of one turn as a formatting model writes them: capitalised, punctuated."""
    texts = [t.text for t in tokens]
    first = texts[0]
    i = next(i for i, ch in enumerate(first) if _is_wordlike(ch))  # every token has a word
    texts[0] = first[:i] + first[i].upper() + first[i + 1 :]
    if not texts[-1].endswith(_SENTENCE_END):
        texts[-1] = texts[-1].rstrip(",;:-\u2013\u2014") + "."
    return texts


def _cut(text: str) -> str:
    """A word as a U3 partial shows it when the speaker stops mid-sentence."""
    end = len(text)
    while end and not _is_wordlike(text[end - 1]):
        end -= 1
    return text[:end] + "—"


# -- sharing words among turns, regions and time ----------------------------------------


def _share(weights: Sequence[int], spans: Sequence[int], breaks: Sequence[bool]) -> list[int]:
    """How many of the items go to each span, in order; each span gets at least one.

    When the items fall into exactly ``len(spans)`` groups at the ``breaks`` (an
    item that ends a group has ``True``), those groups are the answer. Otherwise the
    boundaries go where the items' cumulative weight best matches the spans'
    cumulative length.
    """
    n, k = len(weights), len(spans)
    assert 1 <= k <= n
    groups = [i + 1 for i in range(n - 1) if breaks[i]]
    if len(groups) == k - 1:
        bounds = [0, *groups, n]
        return [bounds[j + 1] - bounds[j] for j in range(k)]
    cumulative = [0]
    for w in weights:
        cumulative.append(cumulative[-1] + w)
    total_w, total_s = cumulative[-1], sum(spans)
    bounds = [0]
    elapsed = 0
    for j in range(1, k):
        elapsed += spans[j - 1]
        target = total_w * elapsed / total_s
        lo, hi = bounds[-1] + 1, n - (k - j)
        best = min(range(lo, hi + 1), key=lambda i: (abs(cumulative[i] - target), i))
        bounds.append(best)
    bounds.append(n)
    return [bounds[j + 1] - bounds[j] for j in range(k)]


def _merge_closest(groups: list[list[SpeechRegion]], keep: int) -> list[list[SpeechRegion]]:
    """Join neighbouring groups of regions across the shortest pauses until ``keep`` remain."""
    groups = [list(g) for g in groups]
    while len(groups) > keep:
        gaps = [groups[i + 1][0].start_ms - groups[i][-1].end_ms for i in range(len(groups) - 1)]
        i = gaps.index(min(gaps))
        groups[i : i + 2] = [groups[i] + groups[i + 1]]
    return groups


@attrs.frozen
class _Word:
    start: int
    end: int
    token: _Token
    confidence: float


@attrs.frozen
class _TurnPlan:
    regions: tuple[SpeechRegion, ...]
    words: tuple[_Word, ...]
    region_word_counts: tuple[int, ...]

    @property
    def start(self) -> int:
        return self.regions[0].start_ms

    @property
    def end(self) -> int:
        return self.words[-1].end


def _time_words(
    region: SpeechRegion, tokens: Sequence[_Token], confidence: Callable[[int], float], first: int
) -> list[_Word]:
    total = sum(t.weight for t in tokens)
    duration = region.duration_ms
    bounds = [region.start_ms]
    acc = 0
    for token in tokens:
        acc += token.weight
        # Strictly increasing, so every word lasts at least 1 ms.
        bounds.append(max(bounds[-1] + 1, region.start_ms + round(duration * acc / total)))
    words = []
    for i, token in enumerate(tokens):
        start, next_start = bounds[i], bounds[i + 1]
        gap = 0 if i == len(tokens) - 1 else min(40, (next_start - start) // 4)
        words.append(_Word(start, next_start - gap, token, confidence(first + i)))
    return words


def _plan_turns(
    regions: Sequence[SpeechRegion], tokens: Sequence[_Token], confidence: Callable[[int], float]
) -> list[_TurnPlan]:
    turns: list[list[SpeechRegion]] = []
    for region in regions:
        if turns and region.start_ms - turns[-1][-1].end_ms < TURN_GAP_MS:
            turns[-1].append(region)
        else:
            turns.append([region])
    turns = _merge_closest(turns, len(tokens))
    weights = [t.weight for t in tokens]
    counts = _share(
        weights,
        [sum(r.duration_ms for r in turn) for turn in turns],
        [t.text.endswith(_SENTENCE_END) for t in tokens],
    )
    plans = []
    index = 0
    for turn, count in zip(turns, counts, strict=True):
        turn_tokens = tokens[index : index + count]
        groups = _merge_closest([[r] for r in turn], count)
        merged = [SpeechRegion(start_ms=g[0].start_ms, end_ms=g[-1].end_ms) for g in groups]
        per_region = _share(
            [t.weight for t in turn_tokens],
            [r.duration_ms for r in merged],
            [t.text.endswith(_PHRASE_END) for t in turn_tokens],
        )
        words: list[_Word] = []
        start = 0
        for region, n in zip(merged, per_region, strict=True):
            words += _time_words(region, turn_tokens[start : start + n], confidence, index + start)
            start += n
        plans.append(_TurnPlan(tuple(merged), tuple(words), tuple(per_region)))
        index += count
    return plans


# -- the session's timeline -------------------------------------------------------------

BEGIN_MS: Final = 120
"""When ``Begin`` arrives after the WebSocket opened; the client starts streaming then."""
FRAME_BYTES_MS: Final = 50
"""The duration of each binary frame the client sends."""

# How long after the audio it depends on has been sent each message arrives, and how
# much silence after a turn's last word the model waits for before ending it.
_PARTIAL_LATENCY_MS: Final = {"universal": 170, "u3": 240}
_EOT_SILENCE_MS: Final = {"universal": 400, "u3": 300}
_EOT_LATENCY_MS: Final = {"universal": 90, "u3": 180}
_FORMAT_DELAY_MS: Final = 35  # the formatted copy of a classic end of turn
_SPEECH_STARTED_AFTER_MS: Final = 150  # speech the U3 model hears before SpeechStarted
_SPEECH_STARTED_LATENCY_MS: Final = 60
_U3_PAUSE_MS: Final = 150  # silence after a region before a U3 partial
_TERMINATE_AFTER_MS: Final = 3  # client: Terminate after its last frame
_FINAL_AFTER_TERMINATE_MS: Final = 140  # server: a turn cut short by Terminate
_TERMINATION_AFTER_MS: Final = 60
_CLOSE_AFTER_MS: Final = 2

EXPIRES_AT: Final = 1767236400
"""The ``expires_at`` of every synthesized ``Begin`` (2026-01-01 03:00 UTC, a constant:
synthesis reads no clock, and a replay server rewrites it for the live session)."""


def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


@final
class _Timeline:
    """The client's frames, and the server messages placed after the audio they need."""

    def __init__(self, audio: _Audio) -> None:
        fmt = AudioFormat(encoding="pcm_s16le", sample_rate=audio.sample_rate)
        chunker = AudioChunker(fmt, chunk_ms=FRAME_BYTES_MS, tail="short")
        frames = [*chunker.feed(audio.pcm), *chunker.flush()]
        self.frames: list[tuple[int, int, float]] = []  # (t_ms, nbytes, audio_ms so far)
        sent = 0
        for frame in frames:
            sent += len(frame)
            audio_ms = fmt.duration_ms(sent)
            self.frames.append((BEGIN_MS + math.ceil(audio_ms), len(frame), audio_ms))
        self.audio_ms = fmt.duration_ms(sent)
        self.terminate_ms = self.frames[-1][0] + _TERMINATE_AFTER_MS
        self.server: list[tuple[int, dict[str, Any]]] = []

    def ready_ms(self, audio_ms: float) -> int | None:
        """When the client has sent ``audio_ms`` of audio, or ``None`` if it never does."""
        for t_ms, _, sent in self.frames:
            if sent >= audio_ms:
                return t_ms
        return None

    def after_audio(self, audio_ms: float, latency_ms: int) -> int | None:
        ready = self.ready_ms(audio_ms)
        return None if ready is None else ready + latency_ms

    def add(self, t_ms: int, message: dict[str, Any]) -> None:
        # Messages are added in the order the server sends them; a later one never
        # goes before an earlier one.
        if self.server:
            t_ms = max(t_ms, self.server[-1][0])
        self.server.append((t_ms, message))

    def entries(self) -> list[Entry]:
        timed: list[tuple[int, int, int, Entry]] = []
        for seq, (t_ms, nbytes, _) in enumerate(self.frames):
            timed.append((t_ms, 0, seq, ClientAudio(t_ms / 1000, nbytes)))
        timed.append(
            (
                self.terminate_ms,
                0,
                len(self.frames),
                ClientMessage(self.terminate_ms / 1000, {"type": "Terminate"}),
            )
        )
        for seq, (t_ms, message) in enumerate(self.server):
            timed.append((t_ms, 1, seq, ServerMessage(t_ms / 1000, message)))
        timed.sort(key=lambda item: item[:3])
        return [item[3] for item in timed]


# -- messages -------------------------------------------------------------------------


@final
class _Seeded:
    """Numbers that look random but are a pure function of the inputs."""

    def __init__(self, seed: bytes) -> None:
        self.seed = seed

    def unit(self, *labels: object) -> float:
        digest = hashlib.sha256(self.seed + repr(labels).encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def between(self, lo: float, hi: float, *labels: object) -> float:
        return round(lo + (hi - lo) * self.unit(*labels), 4)


def _word_json(text: str, word: _Word, *, final: bool) -> dict[str, Any]:
    return {
        "start": word.start,
        "end": word.end,
        "text": text,
        "confidence": word.confidence,
        "word_is_final": final,
    }


def _turn_json(
    order: int,
    *,
    formatted: bool,
    end: bool,
    transcript: str,
    confidence: float,
    words: list[dict[str, Any]],
    utterance: str,
) -> dict[str, Any]:
    # The service's own key order, "type" last.
    return {
        "turn_order": order,
        "turn_is_formatted": formatted,
        "end_of_turn": end,
        "transcript": transcript,
        "end_of_turn_confidence": confidence,
        "words": words,
        "utterance": utterance,
        "type": "Turn",
    }


def _end_time(line: _Timeline, turn: _TurnPlan, style: ModelStyle) -> int:
    at = line.after_audio(turn.end + _EOT_SILENCE_MS[style], _EOT_LATENCY_MS[style])
    # Audio that stops before the pause is long enough: the turn ends on Terminate.
    return line.terminate_ms + _FINAL_AFTER_TERMINATE_MS if at is None else at


def _universal_turn(
    line: _Timeline, order: int, turn: _TurnPlan, rng: _Seeded, *, format_turns: bool
) -> None:
    words = turn.words
    for k in range(1, len(words) + 1):
        at = line.after_audio(words[k - 1].end, _PARTIAL_LATENCY_MS["universal"])
        if at is None or at > line.terminate_ms:
            break  # after Terminate the server sends the end of the turn, not partials
        # Every word but the newest is final; the transcript holds the final ones.
        line.add(
            at,
            _turn_json(
                order,
                formatted=False,
                end=False,
                transcript=" ".join(w.token.plain for w in words[: k - 1]),
                confidence=rng.between(0.005, 0.3, "partial", order, k),
                words=[
                    _word_json(w.token.plain, w, final=i < k - 1) for i, w in enumerate(words[:k])
                ],
                utterance="",
            ),
        )
    at = _end_time(line, turn, "universal")
    plain = " ".join(w.token.plain for w in words)
    confidence = rng.between(0.62, 0.99, "end", order)
    line.add(
        at,
        _turn_json(
            order,
            formatted=False,
            end=True,
            transcript=plain,
            confidence=confidence,
            words=[_word_json(w.token.plain, w, final=True) for w in words],
            utterance=plain,
        ),
    )
    if format_turns:
        texts = _formatted([w.token for w in words])
        text = " ".join(texts)
        line.add(
            at + _FORMAT_DELAY_MS,
            _turn_json(
                order,
                formatted=True,
                end=True,
                transcript=text,
                confidence=confidence,
                words=[_word_json(t, w, final=True) for t, w in zip(texts, words, strict=True)],
                utterance=text,
            ),
        )


def _u3_partial_points(turn: _TurnPlan) -> list[tuple[int, float]]:
    """(words heard, audio needed) for each partial of a U3 turn: one at each pause."""
    points: list[tuple[int, float]] = []
    heard = 0
    for region, count in zip(turn.regions[:-1], turn.region_word_counts[:-1], strict=True):
        heard += count
        points.append((heard, region.end_ms + _U3_PAUSE_MS))
    if not points and len(turn.words) >= 2:
        half = (len(turn.words) + 1) // 2
        points.append((half, turn.words[half - 1].end))
    return points


def _u3_turn(line: _Timeline, order: int, turn: _TurnPlan, rng: _Seeded) -> None:
    at = line.after_audio(turn.start + _SPEECH_STARTED_AFTER_MS, _SPEECH_STARTED_LATENCY_MS)
    if at is None:
        at = line.after_audio(line.audio_ms, _SPEECH_STARTED_LATENCY_MS)
        assert at is not None
    line.add(
        at,
        {
            "type": "SpeechStarted",
            "timestamp": turn.start,
            "confidence": rng.between(0.7, 0.99, "speech", order),
        },
    )
    texts = _formatted([w.token for w in turn.words])
    for heard, needed in _u3_partial_points(turn):
        at = line.after_audio(needed, _PARTIAL_LATENCY_MS["u3"])
        if at is None or at > line.terminate_ms:
            break
        shown = [*texts[: heard - 1], _cut(texts[heard - 1])]
        words = [_word_json(t, w, final=False) for t, w in zip(shown, turn.words, strict=False)]
        line.add(
            at,
            _turn_json(
                order,
                formatted=False,
                end=False,
                transcript=" ".join(shown),
                confidence=0,
                words=words,
                utterance="",
            ),
        )
    text = " ".join(texts)
    line.add(
        _end_time(line, turn, "u3"),
        _turn_json(
            order,
            formatted=True,
            end=True,
            transcript=text,
            confidence=1,
            words=[_word_json(t, w, final=True) for t, w in zip(texts, turn.words, strict=True)],
            utterance=text,
        ),
    )


def audio_ref_for(audio: str | os.PathLike[str], session: str | os.PathLike[str]) -> str:
    """How a session file at ``session`` names ``audio`` in its header: a relative path.

    Pass it as ``audio_ref`` to :func:`synthesize` when the session is written
    elsewhere than next to its audio. Uses ``/`` as separator on every platform.
    """
    ref = os.path.relpath(os.path.abspath(audio), os.path.dirname(os.path.abspath(session)))
    return Path(ref).as_posix()


def synthesize(
    audio: str | os.PathLike[str],
    text: str,
    *,
    model_style: ModelStyle = "universal",
    format_turns: bool = False,
    audio_ref: str | None = None,
) -> RecordedSession:
    """Make a plausible recorded session of streaming ``audio`` whose words are ``text``.

    ``audio`` is a mono 16-bit PCM WAV file (any sample rate from 8000 Hz); the
    session's request carries its sample rate, ``encoding=pcm_s16le``, the
    ``speech_model`` of ``model_style`` (``universal-streaming-english`` or
    ``u3-rt-pro``) and ``format_turns=true`` when asked. ``text`` is the transcript
    as it should read formatted (``"Hi, my name is Sonny."``); the unformatted words
    are its words lowercased without punctuation.

    The session: ``Begin``; the audio in 50 ms frames sent in real time (the last
    one shorter); per turn, partial ``Turn`` messages and the end of turn (classic:
    partials word by word with the newest word non-final, an unformatted end of turn
    then, with ``format_turns``, its formatted copy; U3: ``SpeechStarted``, a partial
    at each pause ending in ``—``, one formatted end of turn); ``Terminate``; the
    turn the audio cut short; ``Termination`` with the streamed audio's duration;
    close 1000. See this module's docstring for how the timing is found.

    ``audio_ref`` is what the header's ``audio`` says: the audio's path relative to
    where the session will be written (see :func:`audio_ref_for`); by default the
    audio's file name, right for a session written next to it.

    Deterministic: the same inputs give an equal session (and file). Raises
    :class:`SynthesisError` for audio that is not a mono 16-bit PCM WAV file, holds
    no speech, or for a text with no words.
    """
    path = Path(audio)
    if model_style not in _MODELS:
        raise ValueError(f"model_style must be 'universal' or 'u3', got {model_style!r}")
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}")
    sound = _read_wav(path)
    tokens = _tokens(text)
    if not tokens:
        raise SynthesisError(str(path), "the text has no words")
    regions = detect_speech(sound.samples, sound.sample_rate)
    if not regions:
        raise SynthesisError(str(path), "no speech found: the audio is silent or too quiet")

    seed = hashlib.sha256()
    for part in (sound.pcm, str(sound.sample_rate).encode(), text.encode(), model_style.encode()):
        seed.update(hashlib.sha256(part).digest())
    seed.update(b"formatted" if format_turns else b"plain")
    rng = _Seeded(seed.digest())

    plans = _plan_turns(regions, tokens, lambda i: rng.between(0.72, 0.99, "word", i))
    line = _Timeline(sound)
    session_id = str(uuid.UUID(bytes=seed.digest()[:16], version=4))
    line.add(BEGIN_MS, {"type": "Begin", "id": session_id, "expires_at": EXPIRES_AT})
    for order, turn in enumerate(plans):
        if model_style == "u3":
            _u3_turn(line, order, turn, rng)
        else:
            _universal_turn(line, order, turn, rng, format_turns=format_turns)
    end_ms = max(line.server[-1][0], line.terminate_ms) + _TERMINATION_AFTER_MS
    line.add(
        end_ms,
        {
            "type": "Termination",
            "audio_duration_seconds": _round_half_up(line.audio_ms / 1000),
            "session_duration_seconds": _round_half_up(end_ms / 1000),
        },
    )
    close_ms = end_ms + _CLOSE_AFTER_MS
    entries = [*line.entries(), Close(close_ms / 1000, 1000, "Session Ended", "server")]

    query = {
        "sample_rate": str(sound.sample_rate),
        "encoding": "pcm_s16le",
        "speech_model": _MODELS[model_style],
    }
    if format_turns:
        query["format_turns"] = "true"
    style = "classic Universal-Streaming" if model_style == "universal" else "U3 (u3-rt-pro)"
    header = Header(
        Request("/v3/ws", query),
        audio=path.name if audio_ref is None else audio_ref,
        source="synthesized",
        description=(
            f"synthesized by aai-replay synth: {len(plans)} turn(s) in "
            f"{line.audio_ms / 1000:.2f} s of audio, {style}"
            + (", format_turns on" if format_turns else "")
        ),
    )
    return RecordedSession(header, entries)
