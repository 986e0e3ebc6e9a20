"""Begin first, and what an early ``Terminate`` ends with (format doc, "Replay semantics").

A. The first ``Begin`` goes out as soon as the replay is built, whatever the recording
   holds before it, with either pacing; every other entry keeps its gates, in file order.
B. Lenient: a ``Terminate`` more than 50 ms of audio short of the recorded one ends the
   session with what the live audio reached: no entry past the live audio (turns recorded
   after the recorded ``Terminate`` included), the non-turn entries after the recorded
   ``Terminate``, and a ``Termination`` that reports the live audio. Within 50 ms the tail
   is released as recorded. The same live audio gives the same messages, whatever its
   frames and times.
C. Strict: an early ``Terminate`` closes 4900.

The property at the end plays every shipped session with a drawn amount of live audio
and checks the result against an oracle computed from the recording alone.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aai_proto import AudioFormat, Terminate, parse_url
from aai_replay import (
    ClientAudio,
    ClientMessage,
    Close,
    CloseConnection,
    Entry,
    Pacing,
    RecordedSession,
    Replay,
    ReplayPlan,
    Send,
    ServerMessage,
    ServerRaw,
    load_session,
)
from tests.replay._replay import BEGIN_LIVE, NOW_UNIX, SESSION_ID, replay, sent

MakeSession = Callable[..., RecordedSession]
TurnFactory = Callable[..., dict[str, Any]]

FRAME = 1600  # 50 ms of 16 kHz pcm_s16le
HALF = 16000  # 500 ms of 16 kHz pcm_s16le
BYTES_PER_MS = 32  # 16 kHz, 2 bytes a sample
SAMPLE = 2
SLACK_MS = 50
BEGIN_RECORDED = {"type": "Begin", "id": "rec-id", "expires_at": 1_700_000_000}
SPEECH_STARTED = {"type": "SpeechStarted", "timestamp": 0}
SPEAKER_REVISION = {
    "type": "SpeakerRevision",
    "revisions": [{"turn_order": 0, "speaker_label": "B", "words": []}],
}
TERMINATION = {"type": "Termination", "audio_duration_seconds": 2, "session_duration_seconds": 3}
SESSION_ENDED = CloseConnection(1000, "Session Ended")


def departures(r: Replay) -> list[tuple[float, str, str]]:
    return [(d.t, d.expected, d.got) for d in r.departures]


def ending(turn: TurnFactory) -> list[Entry]:
    """2000 ms of audio in four 500 ms frames, a turn after each, then the session's end:
    Terminate, the formatted last turn, a SpeakerRevision, Termination and close 1000."""
    return [
        ServerMessage(0.0, BEGIN_RECORDED),
        ClientAudio(0.5, HALF),
        ServerMessage(0.6, turn(0, "one")),  # gate 500 ms
        ClientAudio(1.0, HALF),
        ServerMessage(1.1, turn(0, "one two", end=True)),  # gate 1000 ms
        ClientAudio(1.5, HALF),
        ServerMessage(1.6, turn(1, "three")),  # gate 1500 ms
        ClientAudio(2.0, HALF),
        ServerMessage(2.05, turn(1, "three four", end=True)),  # gate 2000 ms
        ClientMessage(2.1, {"type": "Terminate"}),
        ServerMessage(2.2, turn(1, "Three four.", end=True, formatted=True)),
        ServerMessage(2.3, SPEAKER_REVISION),
        ServerMessage(2.4, TERMINATION),
        Close(2.5, 1000, "Session Ended", "server"),
    ]


def whole_ending(turn: TurnFactory) -> list[Any]:
    """Everything ``ending`` sends to a client that sends all its audio, in order."""
    return [
        BEGIN_LIVE,
        turn(0, "one"),
        turn(0, "one two", end=True),
        turn(1, "three"),
        turn(1, "three four", end=True),
        turn(1, "Three four.", end=True, formatted=True),
        SPEAKER_REVISION,
        TERMINATION,
        SESSION_ENDED,
    ]


def play_out(r: Replay, frames: Sequence[int], *, now: float = 0.0) -> list[Any]:
    """Send ``frames``, then Terminate; return everything sent since the replay was built."""
    out = r.data_to_send()
    for nbytes in frames:
        r.receive_audio(nbytes, now)
        out += r.data_to_send()
    r.receive_message(Terminate(), now)
    out += r.data_to_send()
    return sent(out)


# -- A. Begin goes first ---------------------------------------------------------------


@pytest.mark.parametrize("pacing", ["audio", "wall"])
def test_begin_goes_first_though_audio_was_recorded_before_it(
    make_session: MakeSession, turn: TurnFactory, pacing: str
) -> None:
    session = make_session(
        [
            ClientAudio(0.0, FRAME),
            ClientAudio(0.05, FRAME),
            ServerMessage(0.3, BEGIN_RECORDED),
            ServerMessage(0.35, turn(0, "a")),  # gate 100 ms: the audio before Begin counts
            ClientAudio(0.4, FRAME),
            ServerMessage(0.45, turn(0, "a b", end=True)),  # gate 150 ms
        ]
    )
    r = replay(session, pacing=pacing)
    assert sent(r.data_to_send()) == [BEGIN_LIVE]
    r.receive_audio(FRAME, 1.0)
    assert r.data_to_send() == []
    r.receive_audio(FRAME - SAMPLE, 1.0)
    assert r.data_to_send() == []
    r.receive_audio(SAMPLE, 1.0)
    assert sent(r.data_to_send()) == [turn(0, "a")]
    r.receive_audio(FRAME, 1.0)
    assert sent(r.data_to_send()) == [turn(0, "a b", end=True)]
    assert r.waiting_for_client


def test_a_server_message_recorded_before_begin_follows_it(
    make_session: MakeSession, turn: TurnFactory
) -> None:
    session = make_session(
        [
            ServerMessage(0.0, SPEECH_STARTED),  # gate 0 ms
            ClientAudio(0.05, FRAME),
            ServerMessage(0.1, turn(0, "early")),  # gate 50 ms
            ServerMessage(0.2, BEGIN_RECORDED),
            ClientAudio(0.25, FRAME),
            ServerMessage(0.3, turn(0, "early bird")),  # gate 100 ms
        ]
    )
    r = replay(session)
    assert sent(r.data_to_send()) == [BEGIN_LIVE, SPEECH_STARTED]
    r.receive_audio(FRAME, 0.1)
    assert sent(r.data_to_send()) == [turn(0, "early")]
    r.receive_audio(FRAME, 0.2)
    assert sent(r.data_to_send()) == [turn(0, "early bird")]


def test_wall_pacing_sends_begin_at_once_and_times_the_rest(
    make_session: MakeSession, turn: TurnFactory
) -> None:
    session = make_session(
        [
            ServerMessage(0.5, SPEECH_STARTED),
            ClientAudio(0.6, FRAME),
            ServerMessage(1.5, BEGIN_RECORDED),  # recorded late: still sent at t=0
            ServerMessage(1.6, turn(0, "a")),
        ]
    )
    r = replay(session, pacing="wall")
    assert sent(r.data_to_send()) == [BEGIN_LIVE]
    assert r.next_deadline() == 0.5
    r.advance(0.4)
    assert r.data_to_send() == []
    r.advance(0.5)
    assert sent(r.data_to_send()) == [SPEECH_STARTED]
    assert r.next_deadline() is None  # the turn waits for audio first
    r.receive_audio(FRAME, 0.7)
    assert r.data_to_send() == []
    assert r.next_deadline() == 1.6
    r.advance(1.6)
    assert sent(r.data_to_send()) == [turn(0, "a")]


def test_begin_goes_first_with_wall_pacing_and_speed(
    make_session: MakeSession, turn: TurnFactory
) -> None:
    session = make_session(
        [
            ClientAudio(0.0, FRAME),
            ServerMessage(4.0, BEGIN_RECORDED),
            ServerMessage(4.1, turn(0, "a")),
        ]
    )
    r = replay(session, pacing="wall", speed=0.5)
    assert sent(r.data_to_send()) == [BEGIN_LIVE]
    r.receive_audio(FRAME, 0.0)
    assert r.next_deadline() == pytest.approx(8.2)


# -- B. lenient: an early Terminate ends with what the live audio reached ------------------


def test_the_whole_audio_gets_the_whole_recording(
    turn: TurnFactory, make_session: MakeSession
) -> None:
    r = replay(make_session(ending(turn)))
    assert play_out(r, [HALF] * 4) == whole_ending(turn)
    assert r.departures == []
    assert r.finished


def test_an_early_terminate_keeps_the_non_turns_after_the_recorded_one(
    make_session: MakeSession, turn: TurnFactory
) -> None:
    r = replay(make_session(ending(turn)))
    r.data_to_send()
    r.receive_audio(3 * HALF, 0.5)  # 1500 ms of the recorded 2000
    assert sent(r.data_to_send()) == [
        turn(0, "one"),
        turn(0, "one two", end=True),
        turn(1, "three"),
    ]
    r.receive_message(Terminate(), 0.7)
    actions = r.data_to_send()
    assert sent(actions) == [
        SPEAKER_REVISION,
        {**TERMINATION, "audio_duration_seconds": 2},  # 1.5 s, rounded half up
        SESSION_ENDED,
    ]
    # Only audio_duration_seconds changes: the other fields keep their values and places.
    assert actions[1] == Send(
        '{"type":"Termination","audio_duration_seconds":2,"session_duration_seconds":3}'
    )
    assert departures(r) == [(0.7, "2000 ms of audio before Terminate", "1500 ms")]
    assert r.finished


def test_an_early_terminate_drops_what_was_recorded_before_it_too(
    make_session: MakeSession, turn: TurnFactory
) -> None:
    r = replay(make_session(ending(turn)))
    assert play_out(r, [HALF - SAMPLE]) == [
        BEGIN_LIVE,
        SPEAKER_REVISION,
        {**TERMINATION, "audio_duration_seconds": 0},  # 499.9375 ms
        SESSION_ENDED,
    ]
    assert departures(r) == [(0.0, "2000 ms of audio before Terminate", "499.938 ms")]


def test_a_terminate_with_no_audio(make_session: MakeSession, turn: TurnFactory) -> None:
    r = replay(make_session(ending(turn)))
    assert play_out(r, []) == [
        BEGIN_LIVE,
        SPEAKER_REVISION,
        {**TERMINATION, "audio_duration_seconds": 0},
        SESSION_ENDED,
    ]
    assert departures(r) == [(0.0, "2000 ms of audio before Terminate", "0 ms")]


def test_a_terminate_exactly_at_the_slack_is_not_early(
    make_session: MakeSession, turn: TurnFactory
) -> None:
    r = replay(make_session(ending(turn)))
    # 50 ms short, in a short last frame: released as recorded, Termination unchanged.
    assert play_out(r, [HALF] * 3 + [HALF - FRAME]) == whole_ending(turn)
    assert r.departures == []


@pytest.mark.parametrize(
    ("short", "got"),
    [
        (FRAME + SAMPLE, "1949.938 ms"),  # 50 ms and one sample: 1949.9375 ms
        (2 * FRAME, "1900 ms"),  # 50 ms and one 50 ms frame
    ],
)
def test_a_terminate_past_the_slack_is_early(
    make_session: MakeSession, turn: TurnFactory, short: int, got: str
) -> None:
    r = replay(make_session(ending(turn)))
    assert play_out(r, [HALF] * 3 + [HALF - short]) == [
        BEGIN_LIVE,
        turn(0, "one"),
        turn(0, "one two", end=True),
        turn(1, "three"),
        # not "three four" (gate 2000 ms) nor its formatted copy after Terminate
        SPEAKER_REVISION,
        TERMINATION,  # 1.95 s or 1.9 s: 2 s, as recorded
        SESSION_ENDED,
    ]
    assert departures(r) == [(0.0, "2000 ms of audio before Terminate", got)]


def test_more_audio_than_recorded_is_not_early(
    make_session: MakeSession, turn: TurnFactory
) -> None:
    r = replay(make_session(ending(turn)))
    assert play_out(r, [HALF] * 7) == whole_ending(turn)
    assert r.departures == []


@pytest.mark.parametrize(
    ("nbytes", "seconds"),
    [
        (0, 0),
        (HALF - SAMPLE, 0),  # 499.9375 ms
        (HALF, 1),  # 500 ms: halves up
        (3 * HALF - SAMPLE, 1),  # 1499.9375 ms
        (3 * HALF, 2),  # 1500 ms
        (5 * HALF, 3),  # 2500 ms: halves up, not to even
        (7 * HALF - SAMPLE, 3),
    ],
)
def test_the_termination_reports_the_live_audio_rounded_half_up(
    make_session: MakeSession, nbytes: int, seconds: int
) -> None:
    session = make_session(
        [
            ServerMessage(0.0, BEGIN_RECORDED),
            ClientAudio(1.0, 10 * HALF),  # 5 s
            ClientMessage(5.0, {"type": "Terminate"}),
            ServerMessage(5.1, {**TERMINATION, "audio_duration_seconds": 5}),
        ]
    )
    r = replay(session)
    assert play_out(r, [nbytes] if nbytes else []) == [
        BEGIN_LIVE,
        {**TERMINATION, "audio_duration_seconds": seconds},
    ]


def test_a_raw_termination_is_sent_as_recorded(
    make_session: MakeSession, turn: TurnFactory
) -> None:
    raw = '{"type": "Termination", "audio_duration_seconds": 2, "session_duration_seconds": 3}'
    entries = ending(turn)
    entries[-2] = ServerRaw(2.4, raw)
    r = replay(make_session(entries))
    r.data_to_send()
    r.receive_audio(HALF, 0.1)
    r.receive_message(Terminate(), 0.2)
    assert r.data_to_send() == [
        Send(json.dumps(turn(0, "one"), separators=(",", ":"))),
        Send(json.dumps(SPEAKER_REVISION, separators=(",", ":"))),
        Send(raw),
        SESSION_ENDED,
    ]
    assert departures(r) == [(0.2, "2000 ms of audio before Terminate", "500 ms")]


def opus_session(make_session: MakeSession, turn: TurnFactory) -> RecordedSession:
    return make_session(
        [
            ServerMessage(0.0, BEGIN_RECORDED),
            ClientAudio(0.1, 300),
            ServerMessage(0.2, turn(0, "a")),  # gate 300 bytes
            ClientAudio(0.3, 200),
            ServerMessage(0.4, turn(0, "a b", end=True)),  # gate 500 bytes
            ClientMessage(0.5, {"type": "Terminate"}),
            ServerMessage(0.6, turn(0, "A b.", end=True, formatted=True)),
            ServerMessage(0.7, SPEAKER_REVISION),
            ServerMessage(0.8, TERMINATION),
            Close(0.9, 1000, "Session Ended", "server"),
        ],
        query={"encoding": "opus"},
    )


def test_compressed_audio_counts_bytes_and_keeps_the_termination(
    make_session: MakeSession, turn: TurnFactory
) -> None:
    r = replay(opus_session(make_session, turn), parse_url("?encoding=opus"))
    assert play_out(r, [100, 250]) == [
        BEGIN_LIVE,
        turn(0, "a"),
        SPEAKER_REVISION,
        TERMINATION,  # no duration to report: as recorded
        SESSION_ENDED,
    ]
    assert departures(r) == [(0.0, "500 bytes of audio before Terminate", "350 bytes")]


def test_compressed_audio_has_no_slack(make_session: MakeSession, turn: TurnFactory) -> None:
    # The 50 ms slack has no size in bytes: one byte short is early.
    r = replay(opus_session(make_session, turn), parse_url("?encoding=opus"))
    assert play_out(r, [499]) == [
        BEGIN_LIVE,
        turn(0, "a"),
        SPEAKER_REVISION,
        TERMINATION,
        SESSION_ENDED,
    ]
    assert departures(r) == [(0.0, "500 bytes of audio before Terminate", "499 bytes")]


def test_compressed_audio_of_the_recorded_size_is_not_early(
    make_session: MakeSession, turn: TurnFactory
) -> None:
    r = replay(opus_session(make_session, turn), parse_url("?encoding=opus"))
    assert play_out(r, [499, 1]) == [
        BEGIN_LIVE,
        turn(0, "a"),
        turn(0, "a b", end=True),
        turn(0, "A b.", end=True, formatted=True),
        SPEAKER_REVISION,
        TERMINATION,
        SESSION_ENDED,
    ]
    assert r.departures == []


@pytest.mark.parametrize(
    "frames",
    [
        [3 * HALF + 100 * SAMPLE],
        [FRAME] * 30 + [100 * SAMPLE],
        [SAMPLE] * 8 + [3 * HALF + 92 * SAMPLE],
        [7, 1, 3 * HALF + 192],  # odd frames: only the total counts
    ],
)
@pytest.mark.parametrize("pacing", ["audio", "wall"])
def test_the_same_live_audio_gives_the_same_messages(
    make_session: MakeSession, turn: TurnFactory, frames: list[int], pacing: str
) -> None:
    expected = [
        BEGIN_LIVE,
        turn(0, "one"),
        turn(0, "one two", end=True),
        turn(1, "three"),
        SPEAKER_REVISION,
        {**TERMINATION, "audio_duration_seconds": 2},  # 1506.25 ms
        SESSION_ENDED,
    ]
    assert sum(frames) == 3 * HALF + 200
    for times in ([0.0] * len(frames), [0.4 * i for i in range(len(frames))]):
        r = replay(make_session(ending(turn)), pacing=pacing)
        out = r.data_to_send()
        for nbytes, now in zip(frames, times, strict=True):
            r.receive_audio(nbytes, now)
            r.advance(now)
            out += r.data_to_send()
        r.receive_message(Terminate(), times[-1] + 0.1)
        r.advance(100.0)
        out += r.data_to_send()
        assert sent(out) == expected
        assert [(d.expected, d.got) for d in r.departures] == [
            ("2000 ms of audio before Terminate", "1506.25 ms")
        ]


# -- C. strict: an early Terminate closes 4900 -----------------------------------------


def test_strict_closes_at_an_early_terminate(make_session: MakeSession, turn: TurnFactory) -> None:
    r = replay(make_session(ending(turn)), strict=True)
    assert play_out(r, [HALF] * 3) == [
        BEGIN_LIVE,
        turn(0, "one"),
        turn(0, "one two", end=True),
        turn(1, "three"),
        CloseConnection(4900, "expected 2000 ms of audio before Terminate, got 1500 ms"),
    ]
    assert r.finished
    assert departures(r) == [(0.0, "2000 ms of audio before Terminate", "1500 ms")]


def test_strict_closes_one_sample_past_the_slack(
    make_session: MakeSession, turn: TurnFactory
) -> None:
    r = replay(make_session(ending(turn)), strict=True)
    out = play_out(r, [HALF] * 3 + [HALF - FRAME - SAMPLE])
    assert out[-1] == CloseConnection(
        4900, "expected 2000 ms of audio before Terminate, got 1949.938 ms"
    )


def test_strict_accepts_a_terminate_at_the_slack(
    make_session: MakeSession, turn: TurnFactory
) -> None:
    r = replay(make_session(ending(turn)), strict=True)
    assert play_out(r, [HALF] * 3 + [HALF - FRAME]) == whole_ending(turn)
    assert r.departures == []


def test_strict_closes_at_an_early_terminate_of_compressed_audio(
    make_session: MakeSession, turn: TurnFactory
) -> None:
    r = replay(opus_session(make_session, turn), parse_url("?encoding=opus"), strict=True)
    assert play_out(r, [350]) == [
        BEGIN_LIVE,
        turn(0, "a"),
        CloseConnection(4900, "expected 500 bytes of audio before Terminate, got 350 bytes"),
    ]


# -- the property over the shipped sessions ---------------------------------------------

SESSIONS = Path(__file__).resolve().parents[2] / "fixtures" / "sessions"
PCM16K = AudioFormat(encoding="pcm_s16le", sample_rate=16000)
T_TERMINATE = 10.0  # when every run sends Terminate, so made-up Terminations agree


@functools.cache
def shipped_sessions() -> tuple[RecordedSession, ...]:
    return tuple(load_session(path) for path in sorted(SESSIONS.glob("*.jsonl")))


def test_the_shipped_sessions_are_16k_pcm() -> None:
    assert len(shipped_sessions()) >= 5
    for session in shipped_sessions():
        assert session.audio_format == PCM16K, session.path


def recorded_gates(session: RecordedSession) -> list[tuple[Entry, float, bool]]:
    """Each server-side entry, the recorded audio before it (ms) and whether it comes
    after the recorded Terminate."""
    nbytes = 0
    after_terminate = False
    out: list[tuple[Entry, float, bool]] = []
    for entry in session.entries:
        if isinstance(entry, ClientAudio):
            nbytes += entry.nbytes
        elif isinstance(entry, ClientMessage):
            after_terminate = after_terminate or entry.type == "Terminate"
        else:
            out.append((entry, nbytes / BYTES_PER_MS, after_terminate))
    return out


def terminate_gate(session: RecordedSession) -> float | None:
    """The recorded audio before the recorded Terminate (ms), if there is one."""
    nbytes = 0
    for entry in session.entries:
        if isinstance(entry, ClientAudio):
            nbytes += entry.nbytes
        elif isinstance(entry, ClientMessage) and entry.type == "Terminate":
            return nbytes / BYTES_PER_MS
    return None


def kind(entry: Entry) -> str | None:
    return entry.message.get("type") if isinstance(entry, ServerMessage) else None


def as_sent(entry: Entry) -> Any:
    if isinstance(entry, ServerMessage):
        return dict(entry.message)
    if isinstance(entry, ServerRaw):
        return entry.text
    assert isinstance(entry, Close)
    return CloseConnection(entry.code, entry.reason) if entry.by == "server" else None


def amount(ms: float) -> str:
    """An amount of audio as a departure names it: whole, or to three decimals."""
    return f"{ms:.3f}".rstrip("0").rstrip(".")


def half_up(ms: float) -> int:
    return math.floor(ms / 1000 + 0.5)


def expected_messages(session: RecordedSession, live_ms: float) -> list[Any]:
    """What a client that sends ``live_ms`` of audio then Terminate gets (the oracle)."""
    gates = recorded_gates(session)
    begin = next(i for i, (entry, _, _) in enumerate(gates) if kind(entry) == "Begin")
    out: list[Any] = [BEGIN_LIVE]
    rest = [g for i, g in enumerate(gates) if i != begin]
    terminate = terminate_gate(session)
    if terminate is None:
        # The live Terminate is answered with a made-up Termination, unless the
        # recording closed the connection first.
        for entry, gate, _ in rest:
            if gate > live_ms:
                break
            out.append(as_sent(entry))
            if isinstance(entry, Close):
                return out
        out.append(
            {
                "type": "Termination",
                "audio_duration_seconds": half_up(live_ms),
                "session_duration_seconds": round(T_TERMINATE),
            }
        )
        out.append(SESSION_ENDED)
        return out
    early = live_ms + SLACK_MS < terminate
    for entry, gate, after in rest:
        if early and gate > live_ms and (not after or kind(entry) == "Turn"):
            continue
        item = as_sent(entry)
        if early and kind(entry) == "Termination":
            item = {**item, "audio_duration_seconds": half_up(live_ms)}
        if item is not None:
            out.append(item)
    return out


def frames_of(cuts: list[int], total: int) -> list[int]:
    points = sorted({0, total, *(min(cut * SAMPLE, total) for cut in cuts)})
    return [b - a for a, b in itertools.pairwise(points)]


def run(
    session: RecordedSession, frames: list[int], times: list[float], pacing: Pacing
) -> tuple[list[Any], Replay]:
    r = Replay(
        ReplayPlan(session),
        session.params,
        pacing=pacing,
        session_id=SESSION_ID,
        now_unix=NOW_UNIX,
    )
    out = r.data_to_send()
    for nbytes, now in zip(frames, times, strict=True):
        r.receive_audio(nbytes, now)
        out += r.data_to_send()
    r.receive_message(Terminate(), T_TERMINATE)
    out += r.data_to_send()
    r.advance(T_TERMINATE + 1000.0)  # wall pacing: let everything fall due
    out += r.data_to_send()
    return sent(out), r


def live_samples(session: RecordedSession) -> st.SearchStrategy[int]:
    """A number of whole samples, often near the slack's edge or a half second."""
    total = sum(e.nbytes for e in session.entries if isinstance(e, ClientAudio)) // SAMPLE
    terminate = terminate_gate(session)
    edge = round(((terminate if terminate is not None else total / 16) - SLACK_MS) * 16)
    halves = [8000 + 16000 * k for k in range(total // 16000 + 1)]
    return st.one_of(
        st.integers(0, total),
        st.integers(edge - 3, edge + 3),
        st.sampled_from(halves),
        st.just(total),
    ).filter(lambda n: 0 <= n <= total)


def times_for(data: st.DataObject, frames: list[int]) -> list[float]:
    times = data.draw(
        st.lists(
            st.floats(0, T_TERMINATE, allow_nan=False), min_size=len(frames), max_size=len(frames)
        )
    )
    return sorted(times)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_an_early_terminate_on_the_shipped_sessions(data: st.DataObject) -> None:
    session = data.draw(st.sampled_from(shipped_sessions()), label="session")
    assert session.audio_format == PCM16K
    samples = data.draw(live_samples(session), label="samples")
    live = samples * SAMPLE
    live_ms = live / BYTES_PER_MS
    cut_lists = st.lists(st.integers(0, samples), max_size=25)
    first = frames_of(data.draw(cut_lists, label="first split"), live)
    second = frames_of(data.draw(cut_lists, label="second split"), live)
    assert sum(first) == sum(second) == live

    got, r = run(session, first, [0.0] * len(first), "audio")
    terminate = terminate_gate(session)
    early = terminate is None or live_ms + SLACK_MS < terminate

    # (d) Begin is the first message sent.
    assert got[0] == BEGIN_LIVE
    # (a) After an early Terminate, no Turn past the live audio: exactly the reached ones.
    turns = [m for m in got if isinstance(m, dict) and m.get("type") == "Turn"]
    if early:
        reached = [
            dict(entry.message)
            for entry, gate, _ in recorded_gates(session)
            if isinstance(entry, ServerMessage) and kind(entry) == "Turn" and gate <= live_ms
        ]
        assert turns == reached
    # (b) The Termination reports the live audio after an early Terminate, else as recorded.
    terminations = [m for m in got if isinstance(m, dict) and m.get("type") == "Termination"]
    recorded = [
        entry.message["audio_duration_seconds"]
        for entry in session.entries
        if isinstance(entry, ServerMessage) and kind(entry) == "Termination"
    ]
    for termination in terminations:
        expected_seconds = half_up(live_ms) if early else recorded[0]
        assert termination["audio_duration_seconds"] == expected_seconds
    if terminate is not None:
        assert len(terminations) == 1
    # Departures: one, naming the audio, exactly when a recorded Terminate came early.
    if terminate is not None:
        expected_departures = (
            [(f"{amount(terminate)} ms of audio before Terminate", f"{amount(live_ms)} ms")]
            if early
            else []
        )
        assert [(d.expected, d.got) for d in r.departures] == expected_departures
    # (c) Determinism: other frames, other times, the other pacing: the same messages.
    assert run(session, second, times_for(data, second), "audio")[0] == got
    assert run(session, second, times_for(data, second), "wall")[0] == got
    # And all of it is what the recording alone says.
    assert got == expected_messages(session, live_ms)
