"""The synthesizer: speech regions, turn structure per model style, timing, durations,
determinism, errors.

The audio is tone bursts at known places, so every word time and every ``t`` is
known in advance (the module docstring of ``aai_replay._synth`` gives the rules,
the constants below the latencies). Confidences are hash-derived: they are
checked for range and consistency, then left out of the exact comparisons.
"""

from __future__ import annotations

import array
import json
import math
import struct
import sys
import wave
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

import aai_proto
from aai_replay import (
    ClientAudio,
    ClientMessage,
    Close,
    RecordedSession,
    ServerMessage,
    dumps_session,
    load_session,
    write_session,
)
from aai_replay._synth import (
    SpeechRegion,
    SynthesisError,
    audio_ref_for,
    detect_speech,
    synthesize,
)
from tests.synth._shared import assert_server_follows_audio

# -- test audio: tones and silences at known places --------------------------------

RATE = 16000

# A piece of test audio: ("tone", ms) or ("silence", ms).
Piece = tuple[str, int]


def tone_samples(ms: int, *, rate: int = RATE, amplitude: int = 8000) -> list[int]:
    """A 440 Hz sine of ``ms`` milliseconds (about -12 dBFS at the default amplitude)."""
    n = rate * ms // 1000
    return [round(amplitude * math.sin(2 * math.pi * 440 * i / rate)) for i in range(n)]


def noise_samples(n: int, *, amplitude: int, seed: int = 1) -> list[int]:
    """Deterministic white-ish noise: a linear congruential generator, no ``random``."""
    out = []
    state = seed
    for _ in range(n):
        state = (1103515245 * state + 12345) % 2**31
        out.append(state % (2 * amplitude + 1) - amplitude)
    return out


def build_samples(pieces: Sequence[Piece], *, rate: int = RATE, noise: int = 0) -> list[int]:
    samples: list[int] = []
    for kind, ms in pieces:
        if kind == "tone":
            samples += tone_samples(ms, rate=rate)
        else:
            samples += [0] * (rate * ms // 1000)
    if noise:
        samples = [
            s + d
            for s, d in zip(samples, noise_samples(len(samples), amplitude=noise), strict=True)
        ]
    return samples


def pcm_bytes(samples: Sequence[int]) -> bytes:
    data = array.array("h", samples)
    if sys.byteorder == "big":  # pragma: no cover
        data.byteswap()
    return data.tobytes()


def write_wav(
    path: Path, frames: bytes, *, rate: int = RATE, channels: int = 1, width: int = 2
) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(frames)
    return path


def float_wav_bytes(samples: Sequence[float], rate: int = RATE) -> bytes:
    """A WAV file of 32-bit float samples (format tag 3), which ``wave`` can't write."""
    data = struct.pack(f"<{len(samples)}f", *samples)
    fmt = struct.pack("<HHIIHH", 3, 1, rate, rate * 4, 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.fixture
def make_wav(tmp_path: Path) -> Callable[..., Path]:
    """``make_wav(name, pieces, rate=16000, noise=0)``: a mono 16-bit WAV of tones and silences.

    ``pieces`` is a list of ``("tone", ms)`` and ``("silence", ms)``.
    """

    def make(name: str, pieces: Sequence[Piece], *, rate: int = RATE, noise: int = 0) -> Path:
        samples = build_samples(pieces, rate=rate, noise=noise)
        return write_wav(tmp_path / name, pcm_bytes(samples), rate=rate)

    return make


@pytest.fixture
def samples_of() -> Callable[..., list[int]]:
    """``samples_of(pieces, rate=16000, noise=0)``: the sample values ``make_wav`` would write."""
    return build_samples


@pytest.fixture
def raw_wav(tmp_path: Path) -> Callable[..., Path]:
    """``raw_wav(name, frames, rate=, channels=, width=)``: a WAV file of any PCM layout."""

    def make(name: str, frames: bytes, **layout: int) -> Path:
        return write_wav(tmp_path / name, frames, **layout)

    return make


@pytest.fixture
def float_wav(tmp_path: Path) -> Callable[[str], Path]:
    """``float_wav(name)``: a WAV file of 32-bit float samples (format tag 3)."""

    def make(name: str) -> Path:
        path = tmp_path / name
        path.write_bytes(float_wav_bytes([0.0, 0.5, -0.5, 0.25] * 400))
        return path

    return make


# -- speech regions ----------------------------------------------------------------------

Samples = Callable[..., list[int]]


def regions(*spans: tuple[int, int]) -> tuple[SpeechRegion, ...]:
    return tuple(SpeechRegion(start_ms=a, end_ms=b) for a, b in spans)


def test_bursts_separated_by_silence_are_found_exactly(samples_of: Samples) -> None:
    pieces = [
        ("silence", 300),
        ("tone", 500),  # 300-800
        ("silence", 400),
        ("tone", 250),  # 1200-1450
        ("silence", 700),
        ("tone", 1000),  # 2150-3150
        ("silence", 350),
    ]
    assert detect_speech(samples_of(pieces), 16000) == regions(
        (300, 800), (1200, 1450), (2150, 3150)
    )


def test_short_gaps_are_merged_and_short_bursts_dropped(samples_of: Samples) -> None:
    pieces = [
        ("silence", 200),
        ("tone", 300),  # 200-500
        ("silence", 140),  # under 150 ms: the same region
        ("tone", 200),  # 640-840
        ("silence", 150),  # 150 ms: a new region
        ("tone", 300),  # 990-1290
        ("silence", 500),
        ("tone", 50),  # a 50 ms click: dropped
        ("silence", 500),
        ("tone", 60),  # 60 ms: kept
        ("silence", 300),
    ]
    assert detect_speech(samples_of(pieces), 16000) == regions(
        (200, 840), (990, 1290), (2340, 2400)
    )


def test_background_noise_is_not_speech(samples_of: Samples) -> None:
    # Noise at about -50 dBFS under tones at -12 dBFS.
    pieces = [("silence", 400), ("tone", 600), ("silence", 800), ("tone", 400), ("silence", 400)]
    assert detect_speech(samples_of(pieces, noise=100), 16000) == regions((400, 1000), (1800, 2200))


@pytest.mark.parametrize("rate", [8000, 22050, 44100])
def test_other_sample_rates_give_the_same_regions(samples_of: Samples, rate: int) -> None:
    pieces = [("silence", 300), ("tone", 500), ("silence", 700), ("tone", 300), ("silence", 200)]
    found = detect_speech(samples_of(pieces, rate=rate), rate)
    if rate != 22050:
        assert found == regions((300, 800), (1500, 1800))
    else:
        # 10 ms frames of 220 samples do not fall on the tone's edges: a region takes
        # in the whole frame a tone starts or ends in, never more.
        assert len(found) == 2
        for region, (start, end) in zip(found, [(300, 800), (1500, 1800)], strict=True):
            assert start - 10 <= region.start_ms <= start
            assert end <= region.end_ms <= end + 10


def test_silence_and_near_silence_have_no_speech(samples_of: Samples) -> None:
    assert detect_speech([], 16000) == ()
    assert detect_speech([0] * 16000, 16000) == ()
    # Noise peaking under -60 dBFS is not speech either.
    assert detect_speech(samples_of([("silence", 1000)], noise=20), 16000) == ()


def test_audio_that_never_changes_level_is_one_region(samples_of: Samples) -> None:
    assert detect_speech(samples_of([("tone", 1234)]), 16000) == regions((0, 1234))


def test_a_region_at_the_very_end_ends_with_the_audio(samples_of: Samples) -> None:
    # 1005 ms of audio: the last frame is 5 ms long.
    samples = samples_of([("silence", 500), ("tone", 505)])
    assert detect_speech(samples, 16000) == regions((500, 1005))


def test_duration_and_bad_rate() -> None:
    assert SpeechRegion(start_ms=120, end_ms=480).duration_ms == 360
    with pytest.raises(ValueError, match="sample_rate must be positive, got 0"):
        detect_speech([1, 2, 3], 0)


# -- sessions ----------------------------------------------------------------------------

MakeWav = Callable[..., Path]

# Two turns: a 600 ms burst, 800 ms of silence, a 400 ms burst. 2600 ms in all.
TWO_TURNS = [
    ("silence", 200),
    ("tone", 600),
    ("silence", 800),
    ("tone", 400),
    ("silence", 600),
]


def frames_t(session: RecordedSession) -> list[tuple[float, int]]:
    return [(e.t, e.nbytes) for e in session.entries if isinstance(e, ClientAudio)]


def check_confidences(message: dict[str, Any]) -> None:
    """Confidences in their ranges; U3 writes end_of_turn_confidence as the integers 0 and 1."""
    for word in message.get("words", ()):
        assert 0.72 <= word["confidence"] <= 0.99
    if message.get("type") == "Turn":
        eot = message["end_of_turn_confidence"]
        if message["turn_is_formatted"] and eot == 1:
            assert type(eot) is int
        elif not message["end_of_turn"]:
            assert eot == 0 or 0.005 <= eot <= 0.3
        else:
            assert 0.62 <= eot <= 0.99
    if message.get("type") == "SpeechStarted":
        assert 0.7 <= message["confidence"] <= 0.99


def shape(session: RecordedSession) -> list[tuple[float, str, Any]]:
    """Every entry but the audio frames, server messages without hash-derived numbers."""
    out: list[tuple[float, str, Any]] = []
    for entry in session.entries:
        if isinstance(entry, ServerMessage):
            message = json.loads(json.dumps(dict(entry.message)))
            aai_proto.parse_server_message(json.dumps(message))
            check_confidences(message)
            if message["type"] == "Turn":
                words = [
                    (w["text"], w["start"], w["end"], w["word_is_final"]) for w in message["words"]
                ]
                summary: Any = (
                    message["turn_order"],
                    message["turn_is_formatted"],
                    message["end_of_turn"],
                    message["transcript"],
                    message["utterance"],
                    words,
                )
                if message["turn_is_formatted"] and message["end_of_turn"]:
                    summary = (*summary, message["end_of_turn_confidence"])
            elif message["type"] == "SpeechStarted":
                summary = message["timestamp"]
            elif message["type"] == "Begin":
                summary = message["expires_at"]
            else:
                summary = message
            out.append((entry.t, message["type"], summary))
        elif isinstance(entry, ClientMessage):
            out.append((entry.t, "client", dict(entry.message)))
        elif isinstance(entry, Close):
            out.append((entry.t, "close", (entry.code, entry.reason, entry.by)))
    return out


def termination(seconds_audio: int, seconds_session: int) -> dict[str, Any]:
    return {
        "type": "Termination",
        "audio_duration_seconds": seconds_audio,
        "session_duration_seconds": seconds_session,
    }


HELLO, WORLD, BYE = ("hello", 200, 460), ("world", 500, 800), ("bye", 1600, 2000)


def w(word: tuple[str, int, int], final: bool, text: str | None = None) -> tuple[Any, ...]:
    return (word[0] if text is None else text, word[1], word[2], final)


def test_classic_universal_turns(make_wav: MakeWav) -> None:
    session = synthesize(make_wav("a.wav", TWO_TURNS), "Hello world. Bye.")
    assert shape(session) == [
        (0.12, "Begin", 1767236400),
        # Partials grow word by word; the newest word is not final yet, and the
        # transcript holds only the final ones (so the first one is empty).
        (0.79, "Turn", (0, False, False, "", "", [w(HELLO, False)])),
        (1.09, "Turn", (0, False, False, "hello", "", [w(HELLO, True), w(WORLD, False)])),
        (
            1.41,
            "Turn",
            (0, False, True, "hello world", "hello world", [w(HELLO, True), w(WORLD, True)]),
        ),
        (2.29, "Turn", (1, False, False, "", "", [w(BYE, False)])),
        (2.61, "Turn", (1, False, True, "bye", "bye", [w(BYE, True)])),
        (2.723, "client", {"type": "Terminate"}),
        (2.783, "Termination", termination(3, 3)),
        (2.785, "close", (1000, "Session Ended", "server")),
    ]
    assert session.header.request.query == {
        "sample_rate": "16000",
        "encoding": "pcm_s16le",
        "speech_model": "universal-streaming-english",
    }
    assert session.header.source == "synthesized"
    assert session.header.audio == "a.wav"
    assert session.header.description == (
        "synthesized by aai-replay synth: 2 turn(s) in 2.60 s of audio, classic Universal-Streaming"
    )


def test_classic_universal_with_format_turns_adds_a_formatted_copy(make_wav: MakeWav) -> None:
    session = synthesize(make_wav("a.wav", TWO_TURNS), "Hello world. Bye.", format_turns=True)
    ends = [s for s in shape(session) if s[1] == "Turn" and s[2][2]]
    unformatted_0 = (0, False, True, "hello world", "hello world", [w(HELLO, True), w(WORLD, True)])
    assert [(t, s) for t, _, s in ends] == [
        (1.41, unformatted_0),
        (
            1.445,
            (
                0,
                True,
                True,
                "Hello world.",
                "Hello world.",
                [w(HELLO, True, "Hello"), w(WORLD, True, "world.")],
                # The copy carries the end of turn's confidence.
                next(
                    e.message["end_of_turn_confidence"]
                    for e in session.entries
                    if isinstance(e, ServerMessage) and e.t == 1.41
                ),
            ),
        ),
        (2.61, (1, False, True, "bye", "bye", [w(BYE, True)])),
        (
            2.645,
            (
                1,
                True,
                True,
                "Bye.",
                "Bye.",
                [w(BYE, True, "Bye.")],
                next(
                    e.message["end_of_turn_confidence"]
                    for e in session.entries
                    if isinstance(e, ServerMessage) and e.t == 2.61
                ),
            ),
        ),
    ]
    assert session.header.request.query["format_turns"] == "true"
    assert session.header.description is not None
    assert session.header.description.endswith("classic Universal-Streaming, format_turns on")


def test_u3_turns(make_wav: MakeWav) -> None:
    session = synthesize(make_wav("a.wav", TWO_TURNS), "Hello world. Bye.", model_style="u3")
    assert shape(session) == [
        (0.12, "Begin", 1767236400),
        (0.53, "SpeechStarted", 200),
        # One partial mid-turn (no pause in it): non-final words, cut off with a dash.
        (0.86, "Turn", (0, False, False, "Hello—", "", [w(HELLO, False, "Hello—")])),
        (
            1.4,
            "Turn",
            (
                0,
                True,
                True,
                "Hello world.",
                "Hello world.",
                [w(HELLO, True, "Hello"), w(WORLD, True, "world.")],
                1,
            ),
        ),
        (1.93, "SpeechStarted", 1600),
        (2.6, "Turn", (1, True, True, "Bye.", "Bye.", [w(BYE, True, "Bye.")], 1)),
        (2.723, "client", {"type": "Terminate"}),
        (2.783, "Termination", termination(3, 3)),
        (2.785, "close", (1000, "Session Ended", "server")),
    ]
    partial = next(
        e.message for e in session.entries if isinstance(e, ServerMessage) and e.t == 0.86
    )
    assert type(partial["end_of_turn_confidence"]) is int
    assert session.header.request.query["speech_model"] == "u3-rt-pro"
    assert session.header.description == (
        "synthesized by aai-replay synth: 2 turn(s) in 2.60 s of audio, U3 (u3-rt-pro)"
    )


def test_u3_partials_come_at_pauses_within_a_turn(make_wav: MakeWav) -> None:
    pieces = [("silence", 200), ("tone", 300), ("silence", 200), ("tone", 500), ("silence", 600)]
    session = synthesize(make_wav("a.wav", pieces), "Hi, there friend.", model_style="u3")
    hi, there, friend = ("hi", 200, 500), ("there", 700, 893), ("friend", 933, 1200)
    assert shape(session)[1:4] == [
        (0.53, "SpeechStarted", 200),
        (1.01, "Turn", (0, False, False, "Hi—", "", [w(hi, False, "Hi—")])),
        (
            1.8,
            "Turn",
            (
                0,
                True,
                True,
                "Hi, there friend.",
                "Hi, there friend.",
                [w(hi, True, "Hi,"), w(there, True, "there"), w(friend, True, "friend.")],
                1,
            ),
        ),
    ]


def test_a_turn_the_audio_cuts_short_ends_after_terminate(make_wav: MakeWav) -> None:
    # Speech up to the last sample: no pause ends the turn, Terminate does.
    wav = make_wav("a.wav", [("silence", 200), ("tone", 1000)])
    one, two, three = ("one", 200, 454), ("two", 494, 748), ("three", 788, 1200)
    assert shape(synthesize(wav, "one two three")) == [
        (0.12, "Begin", 1767236400),
        (0.79, "Turn", (0, False, False, "", "", [w(one, False)])),
        (1.04, "Turn", (0, False, False, "one", "", [w(one, True), w(two, False)])),
        # The partial with "three" would come after Terminate: the end of turn does.
        (1.323, "client", {"type": "Terminate"}),
        (
            1.463,
            "Turn",
            (
                0,
                False,
                True,
                "one two three",
                "one two three",
                [w(one, True), w(two, True), w(three, True)],
            ),
        ),
        (1.523, "Termination", termination(1, 2)),
        (1.525, "close", (1000, "Session Ended", "server")),
    ]
    u3 = shape(synthesize(wav, "one two three", model_style="u3"))
    assert [(t, kind) for t, kind, _ in u3] == [
        (0.12, "Begin"),
        (0.53, "SpeechStarted"),
        (1.11, "Turn"),  # the partial after word 2 of 3, 240 ms after its audio
        (1.323, "client"),
        (1.463, "Turn"),
        (1.523, "Termination"),
        (1.525, "close"),
    ]


def test_client_streams_50ms_frames_in_real_time_then_a_shorter_tail(make_wav: MakeWav) -> None:
    # 1030 ms of audio: 20 frames of 50 ms, then 30 ms.
    session = synthesize(
        make_wav("a.wav", [("silence", 100), ("tone", 800), ("silence", 130)]), "x"
    )
    frames = frames_t(session)
    assert frames == [(round(0.12 + 0.05 * k, 3), 1600) for k in range(1, 21)] + [(1.15, 960)]
    assert sum(n for _, n in frames) == 1030 * 32
    entries = session.entries
    terminate = next(i for i, e in enumerate(entries) if isinstance(e, ClientMessage))
    assert isinstance(entries[terminate - 1], ClientAudio)  # Terminate follows the last frame
    assert entries[terminate].t == 1.153


def test_other_sample_rates(make_wav: MakeWav) -> None:
    session = synthesize(make_wav("a.wav", TWO_TURNS, rate=8000), "Hello world. Bye.")
    assert session.header.request.query["sample_rate"] == "8000"
    assert {n for _, n in frames_t(session)} == {800}
    assert [s[0] for s in shape(session) if s[1] == "Turn"] == [0.79, 1.09, 1.41, 2.29, 2.61]


def test_sentences_match_turns_when_the_counts_agree_otherwise_time_shares(
    make_wav: MakeWav,
) -> None:
    wav = make_wav("a.wav", TWO_TURNS)

    def finals(text: str) -> list[str]:
        return [
            e.message["transcript"]
            for e in synthesize(wav, text).entries
            if isinstance(e, ServerMessage) and e.message.get("end_of_turn")
        ]

    assert finals("Hello world. Bye.") == ["hello world", "bye"]
    assert finals("Hi. How are you today?") == ["hi", "how are you today"]
    # No sentence ends to go by: words go where their length matches the speaking
    # time (600 ms then 400 ms; six words of equal length: four, then two).
    assert finals("a b c d e f") == ["a b c d", "e f"]
    # Three sentences for two turns: by time again.
    assert finals("A. B. C. D. E. F.") == ["a b c d", "e f"]


def test_fewer_words_than_turns_merges_turns_across_the_shortest_pause(
    make_wav: MakeWav,
) -> None:
    pieces = [
        ("silence", 100),
        ("tone", 300),  # 100-400
        ("silence", 700),
        ("tone", 300),  # 1100-1400
        ("silence", 650),
        ("tone", 300),  # 2050-2350
        ("silence", 500),
    ]
    session = synthesize(make_wav("a.wav", pieces), "One two.", format_turns=True)
    ends = [
        (m["turn_order"], m["transcript"], [(x["text"], x["start"], x["end"]) for x in m["words"]])
        for e in session.entries
        if isinstance(e, ServerMessage) and (m := e.message).get("turn_is_formatted")
    ]
    assert ends == [(0, "One.", [("One.", 100, 400)]), (1, "Two.", [("Two.", 1100, 2350)])]


def test_formatting_and_unformatting_of_words(make_wav: MakeWav) -> None:
    wav = make_wav("a.wav", [("silence", 100), ("tone", 900), ("silence", 600)])
    session = synthesize(wav, "¿qué tal — bien,", format_turns=True)
    ends = [
        (e.message["transcript"], [x["text"] for x in e.message["words"]])
        for e in session.entries
        if isinstance(e, ServerMessage) and e.message.get("end_of_turn")
    ]
    assert ends == [
        ("qué tal bien", ["qué", "tal", "bien"]),
        # Capitalised after leading punctuation, a stray dash joins its word, and the
        # trailing comma becomes a full stop.
        ("¿Qué tal— bien.", ["¿Qué", "tal—", "bien."]),
    ]
    assert "¿Qué" in dumps_session(session)  # written as UTF-8, not escaped


@pytest.mark.parametrize(
    ("tone_ms", "audio_s"),
    [(1000, 2), (1499, 2), (1500, 3), (2100, 3)],
)
def test_termination_reports_the_streamed_durations_rounded_half_up(
    make_wav: MakeWav, tone_ms: int, audio_s: int
) -> None:
    # 1000 ms of silence around the tone: the audio lasts tone_ms + 1000 ms.
    wav = make_wav("a.wav", [("silence", 500), ("tone", tone_ms), ("silence", 500)])
    session = synthesize(wav, "word")
    end = [e for e in session.entries if isinstance(e, ServerMessage)][-1]
    assert end.message["type"] == "Termination"
    assert end.message["audio_duration_seconds"] == audio_s
    # The session lasted until the Termination was sent.
    assert end.message["session_duration_seconds"] == int(end.t + 0.5)
    assert isinstance(session.entries[-1], Close)
    assert session.entries[-1].t == round(end.t + 0.002, 3)


def test_server_messages_follow_the_audio_they_depend_on(make_wav: MakeWav) -> None:
    wav = make_wav("a.wav", [("silence", 150), ("tone", 700), ("silence", 300), ("tone", 900)])
    for style in ("universal", "u3"):
        session = synthesize(wav, "one two three four five six seven", model_style=style)
        assert_server_follows_audio(session)


def test_same_input_gives_a_byte_identical_file(make_wav: MakeWav, tmp_path: Path) -> None:
    wav = make_wav("a.wav", TWO_TURNS)
    text = "Hello world. Bye."
    first, second = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    write_session(synthesize(wav, text, format_turns=True, audio_ref="a.wav"), first)
    write_session(synthesize(wav, text, format_turns=True, audio_ref="a.wav"), second)
    assert first.read_bytes() == second.read_bytes()
    # A copy of the audio elsewhere, under the same reference: the same file again.
    copy = tmp_path / "elsewhere"
    copy.mkdir()
    (copy / "a.wav").write_bytes(wav.read_bytes())
    third = tmp_path / "three.jsonl"
    write_session(synthesize(copy / "a.wav", text, format_turns=True), third)
    assert third.read_bytes() == first.read_bytes()
    loaded = load_session(first)
    assert loaded == synthesize(wav, text, format_turns=True)
    assert loaded.audio_bytes() == wav.read_bytes()[44:]


def test_the_session_id_depends_on_every_input(make_wav: MakeWav) -> None:
    wav = make_wav("a.wav", TWO_TURNS)
    other = make_wav("b.wav", TWO_TURNS, noise=3)

    def begin_id(audio: Path, text: str = "Hello world. Bye.", **options: Any) -> str:
        entry = synthesize(audio, text, **options).entries[0]
        assert isinstance(entry, ServerMessage)
        return str(entry.message["id"])

    ids = {
        begin_id(wav),
        begin_id(wav, "Hello world. Goodbye."),
        begin_id(wav, format_turns=True),
        begin_id(wav, model_style="u3"),
        begin_id(other),
    }
    assert len(ids) == 5
    assert begin_id(wav) == begin_id(wav)


def test_audio_ref_for() -> None:
    assert audio_ref_for("/x/fixtures/audio/a.wav", "/x/fixtures/sessions/a.jsonl") == (
        "../audio/a.wav"
    )
    assert audio_ref_for("/x/a.wav", "/x/a.jsonl") == "a.wav"
    assert audio_ref_for("/x/a.wav", "/x/deep/er/s.jsonl") == "../../a.wav"


# -- bad input ----------------------------------------------------------------------------


def test_a_file_that_is_not_wav(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    with pytest.raises(SynthesisError) as info:
        synthesize(path, "hello")
    assert str(info.value) == f"{path}: not a WAV file (no RIFF/WAVE header)"
    assert info.value.path == str(path)
    assert info.value.problem == "not a WAV file (no RIFF/WAVE header)"


def test_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.wav"
    with pytest.raises(SynthesisError, match=r"nowhere\.wav: can't read the audio file: "):
        synthesize(path, "hello")


def test_a_truncated_wav(tmp_path: Path) -> None:
    path = tmp_path / "cut.wav"
    path.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ")
    with pytest.raises(SynthesisError, match=r"cut\.wav: not a readable PCM WAV file: "):
        synthesize(path, "hello")


def test_stereo_and_8_bit_and_float_audio(
    raw_wav: Callable[..., Path], float_wav: Callable[[str], Path]
) -> None:
    stereo = raw_wav("stereo.wav", b"\x00\x01" * 3200, channels=2)
    with pytest.raises(SynthesisError) as info:
        synthesize(stereo, "hello")
    assert str(info.value) == f"{stereo}: audio must be mono, this file has 2 channels"
    byte = raw_wav("byte.wav", b"\x80" * 3200, width=1)
    with pytest.raises(SynthesisError) as info:
        synthesize(byte, "hello")
    assert str(info.value) == f"{byte}: audio must be 16-bit PCM (pcm_s16le), this file is 8-bit"
    floating = float_wav("float.wav")
    with pytest.raises(SynthesisError) as info:
        synthesize(floating, "hello")
    assert (
        str(info.value) == f"{floating}: WAV audio must be integer PCM, this one is format 0x0003"
    )


def test_a_low_sample_rate_and_empty_audio(raw_wav: Callable[..., Path]) -> None:
    low = raw_wav("low.wav", b"\x00\x01" * 3200, rate=4000)
    with pytest.raises(SynthesisError, match=r"low\.wav: sample rate must be at least 8000 Hz"):
        synthesize(low, "hello")
    empty = raw_wav("empty.wav", b"")
    with pytest.raises(SynthesisError, match=r"empty\.wav: the file holds no audio"):
        synthesize(empty, "hello")


def test_silence_and_an_empty_text(make_wav: MakeWav) -> None:
    quiet = make_wav("quiet.wav", [("silence", 2000)])
    with pytest.raises(SynthesisError) as info:
        synthesize(quiet, "hello")
    assert info.value.problem == "no speech found: the audio is silent or too quiet"
    loud = make_wav("loud.wav", TWO_TURNS)
    for text in ("", "   ", "— ... !"):
        with pytest.raises(SynthesisError) as info:
            synthesize(loud, text)
        assert str(info.value) == f"{loud}: the text has no words"


def test_bad_options(make_wav: MakeWav) -> None:
    wav = make_wav("a.wav", TWO_TURNS)
    with pytest.raises(ValueError, match="model_style must be 'universal' or 'u3', got 'u4'"):
        synthesize(wav, "hi", model_style="u4")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="text must be a str, not bytes"):
        synthesize(wav, b"hi")  # type: ignore[arg-type]


def test_a_wav_with_other_chunks_before_its_format(make_wav: MakeWav, tmp_path: Path) -> None:
    plain = make_wav("a.wav", TWO_TURNS)
    data = plain.read_bytes()
    # A LIST chunk (odd-sized, so padded) between the RIFF header and "fmt ".
    extra = b"LIST" + (5).to_bytes(4, "little") + b"INFOx" + b"\x00"
    body = data[8:12] + extra + data[12:]
    other = tmp_path / "list.wav"
    other.write_bytes(b"RIFF" + len(body).to_bytes(4, "little") + body)
    assert dumps_session(synthesize(other, "Hello world. Bye.", audio_ref="a.wav")) == (
        dumps_session(synthesize(plain, "Hello world. Bye."))
    )


def test_u3_speech_at_the_very_end_of_the_audio(make_wav: MakeWav) -> None:
    # 100 ms of speech ending the file: SpeechStarted comes once all of it is in.
    late = synthesize(
        make_wav("a.wav", [("silence", 1000), ("tone", 100)]), "Hi.", model_style="u3"
    )
    assert shape(late) == [
        (0.12, "Begin", 1767236400),
        (1.223, "client", {"type": "Terminate"}),
        (1.28, "SpeechStarted", 1000),
        (1.363, "Turn", (0, True, True, "Hi.", "Hi.", [("Hi.", 1000, 1100, True)], 1)),
        (1.423, "Termination", termination(1, 1)),
        (1.425, "close", (1000, "Session Ended", "server")),
    ]
    # A partial that would come after Terminate is not sent: the final is.
    short = synthesize(
        make_wav("b.wav", [("silence", 200), ("tone", 300)]), "Hi there.", model_style="u3"
    )
    assert [(t, kind) for t, kind, _ in shape(short)] == [
        (0.12, "Begin"),
        (0.53, "SpeechStarted"),
        (0.623, "client"),
        (0.763, "Turn"),
        (0.823, "Termination"),
        (0.825, "close"),
    ]
