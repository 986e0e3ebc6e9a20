"""The client and the server's checks as a pair: what ``Client`` sends, a server accepts.

Strategy: wsproto tests its handshake against an independent peer; here the peer
is the library's own model of the service, ``ClientChecker``, alone and inside a
replay (``aai_replay.ReplayConnection``). Hypothesis draws a whole session -- the
format, the chunking, writes of any size split anywhere, control messages, the
passing of time, ``terminate()`` somewhere or nowhere -- and every frame that
``data_to_send()`` returns, and only those, goes to both servers. Neither may
answer with a ``Rejection`` or a ``Violation``, and both must count exactly the
audio the client says it sent. The converse tests show the servers do reject
what a client must never send, so the property can fail.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aai_proto import (
    MAX_CHUNK_MS,
    MIN_CHUNK_MS,
    Client,
    ClientChecker,
    ClientMessage,
    Encoding,
    LocalProtocolError,
    Rejection,
    RemoteProtocolError,
    State,
    StreamingParams,
    TailPolicy,
    UpdateConfiguration,
    Violation,
    build_url,
)
from aai_proto.strategies import client_messages
from aai_replay import (
    Abort,
    ClientAudio,
    Close,
    CloseConnection,
    Header,
    RecordedSession,
    ReplayConnection,
    ReplayOptions,
    ReplayPlan,
    Request,
    Send,
    ServerMessage,
    load_session,
)
from aai_replay import ClientMessage as RecordedClientMessage

SESSIONS = Path(__file__).resolve().parents[2] / "fixtures" / "sessions"

# Rates the property draws: the usual ones, 11025 Hz and its multiples among them,
# and any whole rate (at 8001 Hz a 1000 ms frame once measured 1000.0000000000001 ms).
ENCODINGS: tuple[Encoding, ...] = ("pcm_s16le", "pcm_mulaw", "opus")
RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


def _made_session() -> RecordedSession:
    """A small session made here: Begin, audio, a turn, Terminate, Termination, close."""
    turn = {
        "type": "Turn",
        "turn_order": 0,
        "turn_is_formatted": True,
        "end_of_turn": True,
        "transcript": "hello",
        "end_of_turn_confidence": 0.9,
        "words": [],
    }
    return RecordedSession(
        Header(Request(query={"sample_rate": "16000", "encoding": "pcm_s16le"})),
        [
            ServerMessage(0.01, {"type": "Begin", "id": "made", "expires_at": 1700000000}),
            ClientAudio(0.05, 1600),
            ClientAudio(0.10, 1600),
            ServerMessage(0.12, turn),
            RecordedClientMessage(0.20, {"type": "Terminate"}),
            ServerMessage(
                0.30,
                {"type": "Termination", "audio_duration_seconds": 0, "session_duration_seconds": 0},
            ),
            Close(0.31, 1000, "Session Ended", "server"),
        ],
    )


PLANS: tuple[ReplayPlan, ...] = (
    *(ReplayPlan(load_session(path)) for path in sorted(SESSIONS.glob("*.jsonl"))),
    ReplayPlan(_made_session()),
)


# -- what Hypothesis draws ---------------------------------------------------------------

OpKind = Literal["audio", "force_endpoint", "keep_alive", "update", "wait", "terminate"]


@attrs.frozen(kw_only=True)
class Op:
    """One step of a session: an action of the client, or time passing at the server."""

    kind: OpKind
    writes: tuple[int, ...] = ()  # audio: the sizes of the writes, in order
    fields: Mapping[str, Any] = attrs.field(factory=dict)  # update: the settings
    dt: float = 0.0  # wait: seconds


@attrs.frozen(kw_only=True)
class Script:
    """A whole session: the client's settings and steps, and the replay it talks to."""

    params: StreamingParams
    chunk_ms: int
    tail: TailPolicy
    ops: tuple[Op, ...]
    plan: ReplayPlan
    options: ReplayOptions
    feedback: bool  # whether the client also receives what the replay sends


def _frame_bytes(params: StreamingParams, ms: int) -> int:
    if params.encoding == "opus":
        return 200  # a plausible packet; compressed audio is never cut or timed
    assert params.sample_rate is not None
    per_sample = 2 if params.encoding == "pcm_s16le" else 1
    return params.sample_rate * per_sample * ms // 1000


_updates = client_messages().filter(
    lambda m: isinstance(m, UpdateConfiguration) and bool(m.fields())
)


def _ops(params: StreamingParams, chunk_ms: int) -> st.SearchStrategy[Op]:
    frame = _frame_bytes(params, chunk_ms)
    second = _frame_bytes(params, 1000)
    totals = st.one_of(
        st.integers(0, 64),  # a few samples, or half of one
        st.integers(1, 3 * frame),  # around the frame size
        st.integers(second, 4 * second),  # seconds at once
    )
    audio = totals.flatmap(
        lambda total: st.lists(st.integers(0, total), max_size=6).map(
            lambda cuts: Op(kind="audio", writes=_split(total, cuts))
        )
    )
    return st.one_of(
        audio,
        audio,  # twice: writes are most of a session
        st.just(Op(kind="force_endpoint")),
        st.just(Op(kind="keep_alive")),
        _updates.map(lambda m: Op(kind="update", fields=_fields_of(m))),
        st.floats(0.0, 3.0).map(lambda dt: Op(kind="wait", dt=dt)),
    )


def _split(total: int, cuts: list[int]) -> tuple[int, ...]:
    """The sizes of the writes that cut ``total`` bytes at ``cuts``."""
    bounds = [0, *sorted(cuts), total]
    return tuple(b - a for a, b in itertools.pairwise(bounds))


def _fields_of(message: ClientMessage) -> dict[str, Any]:
    assert isinstance(message, UpdateConfiguration)
    return message.fields()


@st.composite
def scripts(draw: st.DrawFn) -> Script:
    plan = draw(st.sampled_from(PLANS))
    recorded = plan.session.params
    if draw(st.booleans()):
        params = recorded  # the recording's own request: the replay follows it closely
    else:
        encoding = draw(st.sampled_from(ENCODINGS))
        if encoding == "opus":
            rate = draw(st.sampled_from([None, 16000, 48000]))
        else:
            rate = draw(st.sampled_from(RATES) | st.integers(8000, 96000))
        params = attrs.evolve(recorded, encoding=encoding, sample_rate=rate)
    chunk_ms = draw(st.sampled_from([MIN_CHUNK_MS, MAX_CHUNK_MS]) | st.integers(50, 1000))
    ops = draw(st.lists(_ops(params, chunk_ms), min_size=2, max_size=16))
    # Terminate at the end, at any point before (what follows must be refused), or never.
    when = draw(st.sampled_from(["end", "anywhere", "never"]))
    if when != "never":
        at = len(ops) if when == "end" else draw(st.sampled_from(range(len(ops) + 1)))
        ops.insert(at, Op(kind="terminate"))
        if draw(st.booleans()):
            ops.append(Op(kind="terminate"))  # a second one: refused too
    return Script(
        params=params,
        chunk_ms=chunk_ms,
        tail=draw(st.sampled_from(["pad", "short"])),
        ops=tuple(ops),
        plan=plan,
        options=ReplayOptions(
            pacing=draw(st.sampled_from(["audio", "wall"])), strict=draw(st.booleans())
        ),
        feedback=draw(st.booleans()),
    )


# -- running a script ----------------------------------------------------------------------


@attrs.define
class Pair:
    """A client, and the two servers that receive every frame it sends."""

    client: Client
    checker: ClientChecker
    conn: ReplayConnection
    feedback: bool
    now: float = 0.0
    sent_audio: int = 0  # bytes of the binary frames handed to the servers

    @classmethod
    def start(cls, script: Script) -> Pair:
        client = Client(script.params, chunk_ms=script.chunk_ms, tail=script.tail)
        url = build_url(script.params)
        checker = ClientChecker()
        assert checker.receive_request(url) is None
        conn = ReplayConnection(script.plan, script.options, target=url, session_id="pair")
        assert conn.rejection is None
        return cls(client, checker, conn, script.feedback)

    def act(self, op: Op) -> None:
        """Do ``op``; an action the client refuses must leave nothing to send."""
        client = self.client
        try:
            if op.kind == "audio":
                for size in op.writes:
                    client.send_audio(bytes(size))
            elif op.kind == "force_endpoint":
                client.force_endpoint()
            elif op.kind == "keep_alive":
                client.keep_alive()
            elif op.kind == "update":
                client.update_configuration(**op.fields)
            elif op.kind == "terminate":
                client.terminate()
            else:
                self.now += op.dt
                self.pump()
                return
        except LocalProtocolError:
            # Refused: after terminate(), or once the connection closed or broke.
            assert client.state not in (State.CONNECTING, State.STREAMING)
            assert client.data_to_send() == []
            return
        self.deliver()

    def deliver(self) -> None:
        """Hand what the client queued, and only that, to both servers."""
        for frame in self.client.data_to_send():
            result: ClientMessage | Rejection | Violation | None
            if isinstance(frame, bytes):
                self.sent_audio += len(frame)
                result = self.checker.receive_audio(frame)
            else:
                result = self.checker.receive_text(frame)
            shown = f"{len(frame)} bytes" if isinstance(frame, bytes) else frame
            assert not isinstance(result, Rejection | Violation), (shown, result)
            self.conn.receive_message(frame, self.now)
            record = self.conn.record()
            assert record.violations == (), record.violations

    def pump(self) -> None:
        """Let the replay run to ``now``; with feedback, the client receives what it sends."""
        self.conn.advance(self.now)
        for action in self.conn.data_to_send(self.now):
            state = self.client.state
            if not self.feedback or state is State.CLOSED:
                continue
            if isinstance(action, Send):
                if state is State.ERROR:
                    continue  # a broken connection waits only for its close
                try:
                    self.client.receive_message(action.data)
                except RemoteProtocolError:
                    assert self.client.state is State.ERROR
            elif isinstance(action, CloseConnection):
                self.client.connection_closed(action.code, action.reason)
            else:
                assert isinstance(action, Abort)
                self.client.connection_closed(1006)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scripts())
def test_what_the_client_sends_a_server_accepts(script: Script) -> None:
    pair = Pair.start(script)
    pair.pump()
    terminated = False
    for op in script.ops:
        before = pair.client.state
        pair.act(op)
        if op.kind == "terminate" and before in (State.CONNECTING, State.STREAMING):
            terminated = True
            assert pair.client.state is not State.STREAMING
    pair.now += 60.0
    pair.pump()

    client, checker, conn = pair.client, pair.checker, pair.conn
    assert checker.rejection is None
    assert conn.rejection is None
    assert client.audio_bytes_sent == pair.sent_audio
    assert checker.audio_bytes == client.audio_bytes_sent
    record = conn.record()
    assert record.violations == ()
    assert record.audio.bytes == client.audio_bytes_sent
    assert checker.state is (State.TERMINATING_EARLY if terminated else State.CONNECTING)


# -- the converse: the servers do reject what a client never sends -------------------------

PARAMS = StreamingParams(sample_rate=16000)
URL = build_url(PARAMS)
MS = 32  # bytes of 1 ms of 16 kHz pcm_s16le


def test_a_frame_the_client_never_sends_is_rejected_with_3007() -> None:
    checker = ClientChecker()
    assert checker.receive_request(URL) is None
    result = checker.receive_audio(bytes(2000 * MS))
    assert isinstance(result, Rejection)
    assert result.code == 3007
    assert result.error == "Input duration violation: 2000 ms. Expected between 50 and 1000 ms"

    conn = ReplayConnection(PLANS[-1], target=URL, session_id="pair")
    conn.receive_message(bytes(2000 * MS), 0.1)
    assert [v.code for v in conn.record().violations] == [3007]
    assert conn.data_to_send(0.1)[-1] == CloseConnection(3007, Rejection.reason)


def test_audio_after_terminate_is_a_violation() -> None:
    checker = ClientChecker()
    assert checker.receive_request(URL) is None
    assert checker.receive_text('{"type":"Terminate"}') is not None
    result = checker.receive_audio(bytes(50 * MS))
    assert result == Violation(rule="audio after Terminate")

    conn = ReplayConnection(PLANS[-1], target=URL, session_id="pair")
    conn.receive_message('{"type":"Terminate"}', 0.1)
    conn.receive_message(bytes(50 * MS), 0.2)
    assert [(v.code, v.rule) for v in conn.record().violations] == [(None, "audio after Terminate")]


# -- found by the property over any sample rate: the client's frames drew 3007 --------------
#
# ClientChecker measured a frame as ``nbytes / AudioFormat.bytes_per_ms``, and
# ``bytes_per_ms`` (``rate * width / 1000``) is a rounded float for most rates: a
# frame the client made exactly 1000 ms long measured 1000.0000000000001 ms (a 3007
# at once), and one made exactly 50 ms 49.99999999999999 ms (counted as short: the
# 21st in a row was a 3007). Of the integer rates 8000..192000, 25,470 failed the
# first way and 620 the second; duration_ms now divides whole numbers once.


def _first_answer(rate: int, chunk_ms: int, frames: int) -> Rejection | Violation | None:
    params = StreamingParams(sample_rate=rate)
    client = Client(params, chunk_ms=chunk_ms)
    checker = ClientChecker()
    assert checker.receive_request(build_url(params)) is None
    client.send_audio(bytes(client.audio_format.frame_size(chunk_ms) * frames))
    for frame in client.data_to_send():
        assert isinstance(frame, bytes)
        result = checker.receive_audio(frame)
        if result is not None:
            return result
    return None


def test_a_1000_ms_frame_at_8001_hz_is_accepted() -> None:
    assert _first_answer(8001, 1000, 1) is None


def test_50_ms_frames_at_8220_hz_are_accepted() -> None:
    assert _first_answer(8220, 50, 21) is None
