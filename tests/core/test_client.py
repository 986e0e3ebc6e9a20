"""The Client state machine: its actions, its table, and properties over any sequence of inputs."""

from __future__ import annotations

import contextlib
import enum
import json
import re
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from aai_proto import (
    TRANSITIONS,
    AudioChunker,
    AudioFormat,
    Begin,
    Client,
    ConnectionClosed,
    Heartbeat,
    Input,
    InvalidParameter,
    LLMGatewayResponse,
    LocalProtocolError,
    RemoteProtocolError,
    ServerError,
    ServerEvent,
    ServerWarning,
    Silence,
    SpeakerRevision,
    SpeechStarted,
    State,
    StreamingError,
    StreamingParams,
    Termination,
    Turn,
    UnknownMessage,
    dump_server_message,
)
from aai_proto.strategies import (
    audio_writes,
    malformed_server_message_texts,
    server_message_texts,
)

BEGIN = dump_server_message(Begin(id="b-1", expires_at=1764000000))
TURN = dump_server_message(
    Turn(
        turn_order=0,
        turn_is_formatted=False,
        end_of_turn=True,
        transcript="hi",
        end_of_turn_confidence=0.7,
        words=(),
    )
)
TERMINATION = dump_server_message(Termination(audio_duration_seconds=1, session_duration_seconds=1))
ERROR_3007 = dump_server_message(
    ServerError(error_code=3007, error="Input duration violation: 20 ms")
)

# One message of every server event type, as the server sends it.
SAMPLES: dict[type[ServerEvent], str] = {
    Begin: BEGIN,
    Turn: TURN,
    SpeechStarted: '{"type":"SpeechStarted","timestamp":10}',
    Termination: TERMINATION,
    ServerError: ERROR_3007,
    ServerWarning: '{"type":"Warning","warning_code":1,"warning":"w"}',
    Heartbeat: (
        '{"type":"Heartbeat","total_audio_received_ms":1,"total_duration_ms":1,"realtime_factor":1}'
    ),
    Silence: '{"type":"Silence","start_ms":0,"end_ms":1}',
    SpeakerRevision: '{"type":"SpeakerRevision","revisions":[]}',
    LLMGatewayResponse: '{"type":"LLMGatewayResponse","turn_order":0,"transcript":"","data":null}',
    UnknownMessage: '{"type":"Novel"}',
}

FRAME = bytes(1600)  # 50 ms at 16 kHz


def state_of(client: Client) -> State:
    """The state, read through a call so that mypy does not narrow it between actions."""
    return client.state


def new_client() -> Client:
    return Client(StreamingParams())


def test_a_whole_session() -> None:
    client = new_client()
    assert (client.state, client.session_id, client.begin) == (State.CONNECTING, None, None)
    assert client.audio_format == AudioFormat(encoding="pcm_s16le", sample_rate=16000)
    client.send_audio(FRAME + b"\x01" * 100)  # audio may go before Begin
    assert client.receive_message(BEGIN) == [Begin(id="b-1", expires_at=1764000000)]
    assert (client.state, client.session_id) == (State.STREAMING, "b-1")
    client.keep_alive()
    client.send_audio(b"\x02" * 1600)
    client.force_endpoint()
    client.update_configuration(format_turns=True, vad_threshold=1)
    client.terminate()
    assert client.state is State.TERMINATING
    assert client.data_to_send() == [
        FRAME,
        '{"type":"KeepAlive"}',
        b"\x01" * 100 + b"\x02" * 1500,
        '{"type":"ForceEndpoint"}',
        '{"type":"UpdateConfiguration","vad_threshold":1.0,"format_turns":true}',
        b"\x02" * 100 + bytes(1500),  # the tail, padded to 50 ms
        '{"type":"Terminate"}',
    ]
    assert client.data_to_send() == []
    assert client.audio_bytes_sent == 3 * 1600
    [turn] = client.receive_message(TURN)
    assert isinstance(turn, Turn)
    assert client.receive_message(TERMINATION) == [
        Termination(audio_duration_seconds=1, session_duration_seconds=1)
    ]
    assert state_of(client) is State.TERMINATED
    assert client.connection_closed(1000, "Session Ended") == [
        ConnectionClosed(code=1000, reason="Session Ended", error=None)
    ]
    assert state_of(client) is State.CLOSED


def test_terminate_before_begin() -> None:
    client = new_client()
    client.send_audio(b"\x05" * 10)
    client.terminate()
    assert client.data_to_send() == [b"\x05" * 10 + bytes(1590), '{"type":"Terminate"}']
    assert client.state is State.TERMINATING_EARLY
    with pytest.raises(RemoteProtocolError, match="unexpected Turn in state TERMINATING_EARLY"):
        new_terminating_before_begin().receive_message(TURN)
    client.receive_message(BEGIN)
    assert state_of(client) is State.TERMINATING
    client.receive_message(TURN)
    client.receive_message(TERMINATION)
    assert state_of(client) is State.TERMINATED


def new_terminating_before_begin() -> Client:
    client = new_client()
    client.terminate()
    return client


def test_server_error_then_close_gives_a_streaming_error() -> None:
    client = new_client()
    client.receive_message(BEGIN)
    assert client.receive_message(ERROR_3007) == [
        ServerError(error_code=3007, error="Input duration violation: 20 ms")
    ]
    assert client.state is State.STREAMING
    client.send_audio(FRAME)  # queued frames the connection could not send are dropped
    [closed] = client.connection_closed(3007, "See Error message for details")
    assert closed == ConnectionClosed(
        code=3007,
        reason="See Error message for details",
        error=StreamingError(
            3007, "See Error message for details", "Input duration violation: 20 ms"
        ),
    )
    assert closed.error is not None
    assert closed.error.meaning == "audio chunk duration violation, or audio sent too fast"
    assert client.data_to_send() == []


def test_auth_failure_before_begin() -> None:
    client = new_client()
    client.receive_message('{"type":"Error","error_code":1008,"error":"Invalid API key"}')
    [closed] = client.connection_closed(1008, "See Error message for details")
    assert closed.error == StreamingError(1008, "See Error message for details", "Invalid API key")


def test_close_without_error_message() -> None:
    client = new_client()
    [closed] = client.connection_closed(1006)
    assert closed == ConnectionClosed(code=1006, reason="", error=StreamingError(1006, "", None))


@pytest.mark.parametrize(
    ("setup", "message", "error"),
    [
        ([], b"\x00", "the server sent a binary frame"),
        ([], TURN, "unexpected Turn in state CONNECTING"),
        ([], TERMINATION, "unexpected Termination in state CONNECTING"),
        ([BEGIN], BEGIN, "unexpected Begin in state STREAMING"),
        ([BEGIN, TERMINATION], TURN, "unexpected Turn in state TERMINATED"),
        ([BEGIN, TERMINATION], ERROR_3007, "unexpected Error in state TERMINATED"),
        ([BEGIN], '{"type":"Turn"}', "malformed Turn message"),
        ([], "not json", "not valid JSON"),
    ],
)
def test_remote_errors_leave_the_client_in_error(
    setup: list[str], message: str | bytes, error: str
) -> None:
    client = new_client()
    for text in setup:
        client.receive_message(text)
    with pytest.raises(RemoteProtocolError, match=error):
        client.receive_message(message)
    assert client.state is State.ERROR
    with pytest.raises(RemoteProtocolError):
        client.receive_message(BEGIN)
    with pytest.raises(LocalProtocolError, match="can't send_audio in state ERROR"):
        client.send_audio(FRAME)
    assert client.state is State.ERROR
    [closed] = client.connection_closed(1011)
    # The protocol error was the failure; the close after it is no second one.
    assert closed == ConnectionClosed(code=1011)
    assert state_of(client) is State.CLOSED
    with pytest.raises(LocalProtocolError, match="can't send_audio in state CLOSED"):
        client.send_audio(FRAME)
    if setup[-1:] == [TERMINATION]:
        assert client.failure is None  # the session had ended well
    else:
        assert isinstance(client.failure, RemoteProtocolError)
        assert re.search(error, str(client.failure))


def test_second_begin_while_terminating() -> None:
    client = new_client()
    client.receive_message(BEGIN)
    client.terminate()
    with pytest.raises(RemoteProtocolError, match="unexpected Begin in state TERMINATING"):
        client.receive_message(BEGIN)
    assert client.state is State.ERROR


# -- how a session ends: what happened is the client's to say ---------------------------


def test_a_close_after_termination_is_no_failure() -> None:
    client = reach("terminated")
    assert client.termination == Termination(audio_duration_seconds=1, session_duration_seconds=1)
    [closed] = client.connection_closed(1011, "Internal error")
    assert closed == ConnectionClosed(code=1011, reason="Internal error", error=None)
    assert (client.state, client.failure, client.closed) == (State.CLOSED, None, closed)


@pytest.mark.parametrize("route", ["connecting", "streaming", "terminating-early", "terminating"])
def test_a_close_but_1000_while_running_is_the_failure(route: str) -> None:
    client = reach(route)
    [closed] = client.connection_closed(1011, "Internal error")
    assert closed.error == StreamingError(1011, "Internal error", None)
    assert client.failure is closed.error
    assert not closed.local
    assert client.state is State.CLOSED


@pytest.mark.parametrize("route", ["connecting", "streaming", "terminating", "terminated"])
@pytest.mark.parametrize("code", [1000, 1006, 1011])
def test_a_close_this_side_started_is_no_failure(route: str, code: int) -> None:
    client = reach(route)
    client.close()
    assert client.state is State.CLOSING
    [closed] = client.connection_closed(code)
    assert closed == ConnectionClosed(code=code, error=None, local=True)
    assert (client.state, client.failure) == (State.CLOSED, None)


def test_close_drops_queued_frames_and_allows_no_more_sends() -> None:
    client = reach("streaming")
    client.send_audio(FRAME)
    client.close()
    assert client.data_to_send() == []
    for action in (Input.SEND_AUDIO, Input.TERMINATE, Input.KEEP_ALIVE, Input.CLOSE):
        assert not client.allows(action)
        with pytest.raises(LocalProtocolError, match="in state CLOSING"):
            ACTIONS[action](client)


def test_closing_takes_any_message_and_keeps_the_first_begin_and_termination() -> None:
    client = reach("closing-before-begin")
    second = BEGIN.replace("b-1", "b-2")
    for text in (TURN, BEGIN, second, TERMINATION, TURN, TERMINATION):
        [_event] = client.receive_message(text)
        assert client.state is State.CLOSING
    assert client.session_id == "b-1"
    assert client.termination == Termination(audio_duration_seconds=1, session_duration_seconds=1)
    with pytest.raises(RemoteProtocolError, match="not valid JSON"):
        client.receive_message("{")  # malformed data is still an error ...
    assert client.failure is None  # ... but not a failure: Termination came first


def test_malformed_data_while_closing_is_the_failure() -> None:
    client = reach("closing")
    with pytest.raises(RemoteProtocolError, match="not valid JSON") as raised:
        client.receive_message("{")
    assert (client.state, client.failure) == (State.ERROR, raised.value)


def test_a_failed_send_breaks_the_connection_for_good() -> None:
    client = reach("streaming")
    client.send_audio(FRAME)
    client.send_failed()
    assert client.data_to_send() == []
    assert client.state is State.BROKEN
    [_turn] = client.receive_message(TURN)  # what was on the way still arrives
    [closed] = client.connection_closed(1006)
    assert closed == ConnectionClosed(code=1006, error=None, local=True)
    assert (client.state, client.failure) == (State.BROKEN, None)
    for action in (Input.SEND_AUDIO, Input.TERMINATE, Input.CLOSE, Input.SEND_FAILED):
        with pytest.raises(LocalProtocolError, match="in state BROKEN"):
            ACTIONS[action](client)


def test_in_error_close_and_send_failed_keep_the_error() -> None:
    client = reach("error")
    failure = client.failure
    assert isinstance(failure, RemoteProtocolError)
    client.send_failed()
    client.close()
    assert client.state is State.ERROR
    [closed] = client.connection_closed(1002, "protocol error")
    assert closed == ConnectionClosed(code=1002, reason="protocol error", error=None, local=False)
    assert (client.state, client.failure) == (State.CLOSED, failure)


def test_the_failure_is_the_first_and_never_changes() -> None:
    client = reach("streaming")
    client.receive_message(ERROR_3007)
    [closed] = client.connection_closed(3007)
    assert client.failure is closed.error
    assert client.failure is not None
    assert client.failure.message == ("Input duration violation: 20 ms")
    client = reach("streaming")
    with pytest.raises(RemoteProtocolError) as raised:
        client.receive_message(b"\x00")
    client.connection_closed(1011)
    assert client.failure is raised.value


def test_misuse_changes_nothing() -> None:
    client = new_client()
    client.receive_message(BEGIN)
    client.send_audio(b"\x01" * 10)
    client.terminate()
    queued = client.data_to_send()
    actions: list[Callable[[], object]] = [
        lambda: client.send_audio(FRAME),
        client.terminate,
        client.keep_alive,
        client.force_endpoint,
        lambda: client.update_configuration(format_turns=True),
    ]
    for action in actions:
        with pytest.raises(LocalProtocolError, match="in state TERMINATING"):
            action()
        assert client.state is State.TERMINATING
        assert client.data_to_send() == []
    assert queued[-1] == '{"type":"Terminate"}'
    client.connection_closed(1000)
    with pytest.raises(LocalProtocolError, match="after the connection closed"):
        client.receive_message(TERMINATION)
    with pytest.raises(LocalProtocolError, match="already closed"):
        client.connection_closed(1000)
    assert client.state is State.CLOSED


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({}, ValueError, "needs at least one setting"),
        (
            {"sample_rate": 8000},
            ValueError,
            "can't update sample_rate; updatable: acknowledge_silence",
        ),
        ({"vad_threshold": 2}, InvalidParameter, "Invalid 'vad_threshold'"),
        ({"keyterms_prompt": "word"}, InvalidParameter, "expected a list of strings"),
    ],
)
def test_update_configuration_checks_its_fields(
    fields: dict[str, object], error: type[Exception], message: str
) -> None:
    client = new_client()
    with pytest.raises(error, match=message):
        client.update_configuration(**fields)
    assert client.data_to_send() == []
    client.update_configuration(min_end_of_turn_silence_when_confident=120)
    assert client.data_to_send() == ['{"type":"UpdateConfiguration","min_turn_silence":120}']


# -- every (state, input) pair of the table ---------------------------------------------

ACTIONS: dict[Input, Callable[[Client], object]] = {
    Input.SEND_AUDIO: lambda c: c.send_audio(FRAME),
    Input.FORCE_ENDPOINT: Client.force_endpoint,
    Input.UPDATE_CONFIGURATION: lambda c: c.update_configuration(format_turns=True),
    Input.KEEP_ALIVE: Client.keep_alive,
    Input.TERMINATE: Client.terminate,
    Input.CLOSE: Client.close,
    Input.SEND_FAILED: Client.send_failed,
    Input.CONNECTION_CLOSED: lambda c: c.connection_closed(1000),
}

# How to reach each state (CLOSING and BROKEN with and without a Begin).
ROUTES: dict[str, tuple[State, list[str | bytes | int | Input]]] = {
    "connecting": (State.CONNECTING, []),
    "streaming": (State.STREAMING, [BEGIN]),
    "terminating-early": (State.TERMINATING_EARLY, [Input.TERMINATE]),
    "terminating": (State.TERMINATING, [BEGIN, Input.TERMINATE]),
    "terminated": (State.TERMINATED, [BEGIN, TERMINATION]),
    "closing": (State.CLOSING, [BEGIN, Input.CLOSE]),
    "closing-before-begin": (State.CLOSING, [Input.CLOSE]),
    "broken": (State.BROKEN, [BEGIN, Input.SEND_FAILED]),
    "broken-and-closed": (State.BROKEN, [Input.SEND_FAILED, 1006]),
    "closed": (State.CLOSED, [BEGIN, 1000]),
    "error": (State.ERROR, [b""]),
}
"""Each route: server messages to receive, an Input to call, an int for the close."""


def reach(route: str) -> Client:
    state, steps = ROUTES[route]
    client = new_client()
    for step in steps:
        if isinstance(step, Input):
            ACTIONS[step](client)
        elif isinstance(step, int):
            client.connection_closed(step)
        else:
            with contextlib.suppress(RemoteProtocolError):
                client.receive_message(step)
    assert client.state is state
    client.data_to_send()
    return client


def test_table_lists_every_state() -> None:
    assert set(TRANSITIONS) == set(State)
    assert {s for s, _ in ROUTES.values()} == set(State)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("action", list(Input), ids=[i.value for i in Input])
def test_every_action_in_every_state(route: str, action: Input) -> None:
    client = reach(route)
    before = client.state
    target = TRANSITIONS[before].get(action)
    assert client.allows(action) is (target is not None)
    if target is None:
        with pytest.raises(LocalProtocolError):
            ACTIONS[action](client)
        assert client.state is before
        assert client.data_to_send() == []
    else:
        ACTIONS[action](client)
        assert client.state is target


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("kind", list(SAMPLES), ids=[k.__name__ for k in SAMPLES])
def test_every_server_message_in_every_state(route: str, kind: type[ServerEvent]) -> None:
    client = reach(route)
    before = client.state
    target = TRANSITIONS[before].get(kind)
    assert client.allows(kind) is (target is not None)
    if before is State.CLOSED:
        with pytest.raises(LocalProtocolError):
            client.receive_message(SAMPLES[kind])
        assert client.state is State.CLOSED
    elif target is not None:
        [event] = client.receive_message(SAMPLES[kind])
        assert type(event) is kind
        assert client.state is target
    else:
        with pytest.raises(RemoteProtocolError):
            client.receive_message(SAMPLES[kind])
        assert client.state is State.ERROR


# -- properties ---------------------------------------------------------------------


@given(st.text() | st.binary() | server_message_texts() | malformed_server_message_texts())
def test_any_input_gives_events_or_remote_protocol_error(message: str | bytes) -> None:
    for client in (new_client(), reach("streaming"), reach("terminating")):
        try:
            events = client.receive_message(message)
        except RemoteProtocolError:
            assert client.state is State.ERROR
        else:
            assert len(events) == 1


@given(malformed_server_message_texts())
def test_malformed_messages_are_refused(text: str) -> None:
    client = reach("streaming")
    with pytest.raises(RemoteProtocolError):
        client.receive_message(text)


SERVER_SCRIPT = [BEGIN, TURN, TERMINATION, ERROR_3007, SAMPLES[ServerWarning], "{", b"\x00"]


class ClientMachine(RuleBasedStateMachine):
    """Any interleaving of the caller's actions and the server's messages."""

    def __init__(self) -> None:
        super().__init__()
        self.client = Client(StreamingParams(sample_rate=8000), chunk_ms=50)
        self.sent: list[bytes | str] = []
        self.fed = 0
        self.seen_error = False
        self.terminated_by_server = False
        self.ended_well = False
        self.failures: list[Exception | None] = []

    def act(self, action: Callable[[], object]) -> None:
        before = self.client.state
        try:
            action()
        except LocalProtocolError:
            assert self.client.state is before
        self.sent += self.client.data_to_send()

    @rule(data=st.binary(max_size=2000))
    def send_audio(self, data: bytes) -> None:
        def send() -> None:
            self.client.send_audio(data)
            self.fed += len(data)

        self.act(send)

    @rule()
    def terminate(self) -> None:
        self.act(self.client.terminate)

    @rule()
    def control(self) -> None:
        self.act(self.client.keep_alive)
        self.act(self.client.force_endpoint)

    @rule(message=st.sampled_from(SERVER_SCRIPT))
    def receive(self, message: str | bytes) -> None:
        before = self.client.state
        try:
            events = self.client.receive_message(message)
        except RemoteProtocolError as exc:
            assert self.client.state is State.ERROR
            self.seen_error = True
            self.failures.append(exc)
        except LocalProtocolError:
            assert before is State.CLOSED
        else:
            if isinstance(events[0], Termination) and before is not State.CLOSING:
                assert self.client.state in (State.TERMINATED, State.BROKEN)
            if isinstance(events[0], Termination) and not self.failures:
                self.ended_well = True

    @rule()
    def close_here(self) -> None:
        self.act(self.client.close)

    @rule()
    def send_failed(self) -> None:
        self.act(self.client.send_failed)

    @precondition(lambda self: self.client.state is not State.CLOSED)
    @rule(code=st.sampled_from([1000, 1006, 3005]))
    def close(self, code: int) -> None:
        before = self.client.state
        [event] = self.client.connection_closed(code)
        assert isinstance(event, ConnectionClosed)
        assert event.local is (before in (State.CLOSING, State.BROKEN))
        # The close is the failure only if nothing decided the session's end before it.
        is_failure = code != 1000 and not (self.ended_well or self.failures or event.local)
        assert (event.error is not None) is is_failure
        if is_failure:
            self.failures.append(event.error)
        self.seen_error = False

    @invariant()
    def error_is_left_only_by_the_close(self) -> None:
        if self.seen_error:
            assert self.client.state is State.ERROR

    @invariant()
    def the_failure_is_the_first_unless_the_session_ended_well(self) -> None:
        expected = None if self.ended_well or not self.failures else self.failures[0]
        assert self.client.failure is expected

    @invariant()
    def terminate_is_sent_once_and_last(self) -> None:
        texts = [i for i, f in enumerate(self.sent) if isinstance(f, str) and "Terminate" in f]
        assert len(texts) <= 1
        if texts:
            assert all(isinstance(frame, str) for frame in self.sent[texts[0] :])
            audio = b"".join(f for f in self.sent if isinstance(f, bytes))
            # Everything fed was sent, the tail padded with silence to 50 ms at most.
            assert len(audio) >= self.fed
            assert len(audio) - self.fed < 800
            assert audio[self.fed :] == bytes(len(audio) - self.fed)

    @invariant()
    def frames_are_whole_and_legal(self) -> None:
        for frame in self.sent:
            if isinstance(frame, bytes):
                assert len(frame) == 800
            else:
                json.loads(frame)


TestClientMachine = ClientMachine.TestCase
TestClientMachine.settings = settings(max_examples=200, stateful_step_count=30)


# -- send_audio's fast path gives the chunker's frames ---------------------------------


@given(
    writes=audio_writes(),
    kinds=st.lists(st.sampled_from(["bytes", "bytearray", "memoryview"]), min_size=12),
    encoding=st.sampled_from(["pcm_s16le", "pcm_mulaw", "opus"]),
    sample_rate=st.sampled_from([8000, 16000, 22050]),
    begun=st.booleans(),
)
def test_send_audio_frames_are_the_chunkers_whatever_the_writes(
    writes: tuple[bytes, list[int]],
    kinds: list[str],
    encoding: str,
    sample_rate: int,
    begun: bool,
) -> None:
    data, sizes = writes
    params = StreamingParams(sample_rate=sample_rate, encoding=encoding)  # type: ignore[arg-type]
    client = Client(params)
    if begun:
        client.receive_message(BEGIN)
    chunker = AudioChunker(AudioFormat.from_params(params))
    expected: list[bytes | str] = []
    sent: list[bytes | str] = []
    pos = 0
    for size, kind in zip(sizes, kinds, strict=False):
        piece = data[pos : pos + size]
        pos += size
        write: bytes | bytearray | memoryview = (
            piece
            if kind == "bytes"
            else bytearray(piece)
            if kind == "bytearray"
            else memoryview(piece)
        )
        expected += chunker.feed(piece)
        client.send_audio(write)
        sent += client.data_to_send()
        assert client.audio_bytes_sent == sum(len(f) for f in expected)
    client.terminate()
    sent += client.data_to_send()[:-1]  # the last is Terminate
    assert sent == expected + chunker.flush()


def test_a_write_of_exactly_one_frame_is_sent_without_a_copy() -> None:
    client = Client(StreamingParams(sample_rate=16000))
    client.receive_message(BEGIN)
    frame = bytes(range(200)) * 8
    client.send_audio(frame)
    [sent] = client.data_to_send()
    assert sent is frame
    assert client.data_to_send() == []


def test_small_writes_that_complete_a_frame_make_it() -> None:
    client = Client(StreamingParams(sample_rate=16000))
    client.receive_message(BEGIN)
    pieces = [bytes([i]) * 320 for i in range(5)]
    for piece in pieces[:4]:
        client.send_audio(piece)
        assert client.data_to_send() == []
    client.send_audio(pieces[4])
    assert client.data_to_send() == [b"".join(pieces)]
    assert client.audio_bytes_sent == 1600
    client.send_audio(bytearray(b"\x09" * 1000))  # the slow path keeps the rest ...
    client.send_audio(b"\x0a" * 600)  # ... for the fast path to complete
    assert client.data_to_send() == [b"\x09" * 1000 + b"\x0a" * 600]


def test_the_fast_path_refuses_audio_where_the_table_does() -> None:
    client = Client(StreamingParams(sample_rate=16000))
    client.terminate()
    for data in (b"\x01" * 10, FRAME):
        with pytest.raises(LocalProtocolError, match="can't send_audio in state TERMINATING"):
            client.send_audio(data)
    assert client.state is State.TERMINATING_EARLY


def test_empty_writes_leave_nothing_behind() -> None:
    client = new_client()
    for _ in range(100):
        client.send_audio(b"")
        client.send_audio(FRAME)
    assert client.data_to_send() == [FRAME] * 100
    assert client._parts == []
    client.terminate()
    assert client.data_to_send() == ['{"type":"Terminate"}']


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("size", [2, len(FRAME) - 2])
def test_short_write_in_every_state(route: str, size: int) -> None:
    # A write that completes no frame takes send_audio's shortest path: it must still
    # be refused wherever audio is, and kept (not sent) wherever audio may be sent.
    client = reach(route)
    before = client.state
    if TRANSITIONS[before].get(Input.SEND_AUDIO) is None:
        with pytest.raises(LocalProtocolError):
            client.send_audio(FRAME[:size])
        assert client.data_to_send() == []
    else:
        client.send_audio(FRAME[:size])
        assert client.data_to_send() == []
        client.send_audio(FRAME[size:])
        assert client.data_to_send() == [FRAME]
    assert client.state is before


PARAMS = StreamingParams(sample_rate=16000)

# Each call with an argument of the wrong type, and the type the error names.
WRONG_TYPES: dict[str, tuple[Callable[[], object], str]] = {
    "params": (lambda: Client(None), "None"),  # type: ignore[arg-type]
    "params-dict": (lambda: Client({"sample_rate": 16000}), "dict"),  # type: ignore[arg-type]
    "chunk_ms": (lambda: Client(PARAMS, chunk_ms="50"), "str"),  # type: ignore[arg-type]
    "chunk_ms-float": (lambda: Client(PARAMS, chunk_ms=50.0), "float"),  # type: ignore[arg-type]
    "chunk_ms-bool": (lambda: Client(PARAMS, chunk_ms=True), "bool"),
    "code-bool": (lambda: Client(PARAMS).connection_closed(True), "bool"),
    "tail": (lambda: Client(PARAMS, tail=None), "None"),  # type: ignore[arg-type]
    "message": (lambda: Client(PARAMS).receive_message(123), "int"),  # type: ignore[arg-type]
    "message-bytearray": (
        lambda: Client(PARAMS).receive_message(bytearray(b"{}")),  # type: ignore[arg-type]
        "bytearray",
    ),
    "code": (lambda: Client(PARAMS).connection_closed("1000"), "str"),  # type: ignore[arg-type]
    "reason": (lambda: Client(PARAMS).connection_closed(1000, None), "None"),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("case", WRONG_TYPES)
def test_an_argument_of_the_wrong_type_is_a_type_error(case: str) -> None:
    call, named = WRONG_TYPES[case]
    with pytest.raises(TypeError, match=rf"\b{named}$"):
        call()


def test_a_wrong_type_is_refused_before_the_state_is_looked_at() -> None:
    client = reach("closed")
    with pytest.raises(TypeError):
        client.receive_message(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        client.connection_closed(None)  # type: ignore[arg-type]
    assert client.state is State.CLOSED


class _Code(enum.IntEnum):
    GOING_AWAY = 1001


def test_an_int_enum_close_code_is_taken_as_its_value() -> None:
    [closed] = Client(PARAMS).connection_closed(_Code.GOING_AWAY)
    assert type(closed.code) is int
    assert closed.code == 1001
    assert closed.error is not None
    assert type(closed.error.code) is int


def test_the_parsing_limits_are_the_clients_to_set() -> None:
    deep = '{"type":"Begin","id":"x","expires_at":1,"more":' + "[" * 10 + "]" * 10 + "}"
    client = Client(PARAMS, max_nesting_depth=8)
    with pytest.raises(RemoteProtocolError, match="nesting deeper than 8 levels"):
        client.receive_message(deep)
    assert client.state is State.ERROR
    assert isinstance(Client(PARAMS).receive_message(deep)[0], Begin)  # 64 levels by default
    small = Client(PARAMS, max_message_bytes=20)
    with pytest.raises(RemoteProtocolError, match="exceeds the limit of 20 bytes"):
        small.receive_message(deep)
    with pytest.raises(TypeError, match="max_message_bytes must be an int, got bool"):
        Client(PARAMS, max_message_bytes=True)
    with pytest.raises(ValueError, match="max_nesting_depth must be at least 1, got 0"):
        Client(PARAMS, max_nesting_depth=0)
