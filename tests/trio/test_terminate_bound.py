"""``terminate()`` never hangs: a property over scripted servers, in virtual time.

Strategy: Hypothesis draws what a server does -- ``Begin`` or not, turns, ``Error``
messages, garbage, binary frames, stalls (some forever), closes with any code,
drops, reading no more, and answering ``Terminate`` late or never -- and what the
client does around it: audio and ``KeepAlive`` from another task, over a stream
that buffers or one that blocks until read. Each example is one ``trio.run`` on a
``MockClock(autojump_threshold=0)``, over in-memory streams. Whatever the server
does, ``await session.terminate()`` ends -- with a ``Termination``, ``None``, or
one of the errors the README documents -- within ``terminate_timeout +
CLOSE_TIMEOUT`` of virtual time from the call, and the session's block, its
tasks and the sending task are over by then too. A server that never sends
``Begin`` makes ``open_session`` fail within ``connect_timeout``: with
``ConnectTimeout`` when it does nothing else.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Awaitable, Callable
from typing import Literal

import attrs
import trio
import trio.testing
import trio_websocket
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from trio_websocket import WebSocketConnection, WebSocketRequest

import aai_proto as aai
from aai_proto.trio import CLOSE_TIMEOUT, ConnectError, ConnectTimeout, Session, open_session

KEY = "sk-test-SECRET-KEY-0123"
URL = "ws://aai.test/v3/ws"
PARAMS = aai.StreamingParams(sample_rate=16000)
FRAME = 1600  # bytes in 50 ms of 16 kHz pcm_s16le
BEGIN = aai.Begin(id="session-1", expires_at=1759796682)
TERMINATION = aai.Termination(audio_duration_seconds=3, session_duration_seconds=4)
TERMINATE = '{"type":"Terminate"}'
TURN = aai.Turn(
    turn_order=0,
    turn_is_formatted=False,
    end_of_turn=False,
    transcript="hel",
    end_of_turn_confidence=0.0,
    words=(),
)
# What terminate() may raise (README, "Streaming with trio": failures, a send whose
# connection was broken by a cancellation, a send cut short by aclose()).
DOCUMENTED = (
    aai.StreamingError,
    aai.RemoteProtocolError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
)
# What open_session may raise for a session that never begins.
OPEN_ERRORS = (ConnectError, aai.StreamingError, aai.RemoteProtocolError)
EPSILON = 1e-9  # float rounding of the virtual clock's sums

# Close codes a server may put in a close frame (1005, 1006 and 1015 never travel).
CLOSE_CODES = st.sampled_from(
    [1000, 1001, 1002, 1003, 1007, 1008, 1011, 1013, 3005, 3006, 3007, 3008, 4000]
) | st.integers(3000, 4999)


# -- what Hypothesis draws -------------------------------------------------------------------

StepKind = Literal["turn", "error", "garbage", "binary", "stall", "close", "drop", "stop_reading"]


@attrs.frozen(kw_only=True)
class Step:
    """One thing the server does; ``close`` and ``drop`` end its script."""

    kind: StepKind
    code: int = 1000  # error, close
    text: str = ""  # garbage
    data: bytes = b""  # binary
    seconds: float = 0.0  # stall: math.inf stalls forever


# Steps that leave a session that has not begun waiting for Begin: no failure, no close.
QUIET: frozenset[StepKind] = frozenset({"error", "stall", "stop_reading"})


@attrs.frozen(kw_only=True)
class ServerScript:
    """What the server does, after the upgrade."""

    begin: bool
    steps: tuple[Step, ...]
    answer_after: float | None  # seconds from Terminate to Termination; None: never
    close_after_answer: bool
    lockstep: bool  # the stream blocks each send until the other side reads it


@attrs.frozen(kw_only=True)
class ClientScript:
    """The session's settings, and what the client does before and during terminate()."""

    terminate_timeout: float
    connect_timeout: float
    max_buffered_events: int
    call_after: float  # seconds from the opening to terminate()
    sends: tuple[int | float, ...]  # the sending task: frames of audio (int), KeepAlive (0), pauses
    patience: float | None  # how long the sending task waits for a send before cancelling it


stalls = st.floats(0.0, 20.0) | st.just(math.inf)
steps = st.one_of(
    st.just(Step(kind="turn")),
    CLOSE_CODES.map(lambda code: Step(kind="error", code=code)),
    (st.sampled_from(["not JSON", "[]", "{}", '{"type": 1}']) | st.text(max_size=12)).map(
        lambda text: Step(kind="garbage", text=text)
    ),
    # Not st.binary(): under ``python -bb`` Hypothesis's own cache then compares a drawn
    # b"" with a drawn 0 (equal hashes) and the BytesWarning fails the test.
    st.sampled_from([b"", b"\x00", b"\x81\x7e"]).map(lambda data: Step(kind="binary", data=data)),
    stalls.map(lambda seconds: Step(kind="stall", seconds=seconds)),
    stalls.map(lambda seconds: Step(kind="stall", seconds=seconds)),  # twice: stalls are common
    CLOSE_CODES.map(lambda code: Step(kind="close", code=code)),
    st.just(Step(kind="drop")),
    st.just(Step(kind="stop_reading")),
)
server_scripts = st.builds(
    ServerScript,
    begin=st.sampled_from((True,) * 7 + (False,)),  # one in eight never begins
    steps=st.lists(steps, max_size=6).map(tuple),
    answer_after=st.none() | st.floats(0.0, 10.0),
    close_after_answer=st.booleans(),
    lockstep=st.booleans(),
)
client_scripts = st.builds(
    ClientScript,
    terminate_timeout=st.sampled_from([0.0, 0.25, 5.0]) | st.floats(0.0, 10.0),
    connect_timeout=st.sampled_from([10.0]) | st.floats(0.1, 30.0),
    max_buffered_events=st.sampled_from([1, 2, 10_000]),
    call_after=st.sampled_from([0.0]) | st.floats(0.0, 15.0),
    sends=st.lists(st.integers(0, 40) | st.floats(0.0, 5.0, exclude_min=True), max_size=6).map(
        tuple
    ),
    patience=st.none() | st.floats(0.0, 5.0),
)


# -- the server -------------------------------------------------------------------------------


def dump(event: aai.ServerEvent) -> str:
    return aai.dump_server_message(event)


# The errors a scripted server meets when the client has gone: its script just ends.
GONE = (trio_websocket.ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError)


def serve(
    nursery: trio.Nursery,
    handler: Callable[[WebSocketRequest, trio.abc.Stream], Awaitable[None]],
    *,
    lockstep: bool,
) -> trio.abc.Stream:
    """Start ``handler`` as the server of a new in-memory connection; return the client's end."""
    pair = trio.testing.lockstep_stream_pair if lockstep else trio.testing.memory_stream_pair
    client, server = pair()

    async def run() -> None:
        with contextlib.suppress(*GONE):
            await handler(await trio_websocket.wrap_server_stream(nursery, server), server)

    nursery.start_soon(run)
    return client


@attrs.define
class Server:
    """Plays a ``ServerScript``; ``termination_sent`` says whether it sent ``Termination``."""

    script: ServerScript
    termination_sent: bool = False
    terminate_seen: trio.Event = attrs.Factory(trio.Event)
    reading: trio.CancelScope = attrs.Factory(trio.CancelScope)

    async def handle(self, request: WebSocketRequest, stream: trio.abc.Stream) -> None:
        ws = await request.accept()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read, ws)
            if self.script.answer_after is not None:
                nursery.start_soon(self._answer, ws, self.script.answer_after)
            with contextlib.suppress(*GONE):
                await self._play(ws, stream)

    async def _play(self, ws: WebSocketConnection, stream: trio.abc.Stream) -> None:
        if self.script.begin:
            await ws.send_message(dump(BEGIN))
        for step in self.script.steps:
            if step.kind == "turn":
                await ws.send_message(dump(TURN))
            elif step.kind == "error":
                await ws.send_message(dump(aai.ServerError(error_code=step.code, error="boom")))
            elif step.kind == "garbage":
                await ws.send_message(step.text)
            elif step.kind == "binary":
                await ws.send_message(step.data)
            elif step.kind == "stall":
                await trio.sleep(step.seconds)  # math.inf: forever
            elif step.kind == "stop_reading":
                self.reading.cancel()
            elif step.kind == "close":
                await ws.aclose(step.code, "scripted close")
                return
            else:
                assert step.kind == "drop"
                await trio.aclose_forcefully(stream)  # no close frame: the client sees 1006
                return

    async def _read(self, ws: WebSocketConnection) -> None:
        with self.reading, contextlib.suppress(*GONE):
            while True:
                message = await ws.get_message()
                if isinstance(message, str) and message == TERMINATE:
                    self.terminate_seen.set()

    async def _answer(self, ws: WebSocketConnection, delay: float) -> None:
        with contextlib.suppress(*GONE):
            await self.terminate_seen.wait()
            await trio.sleep(delay)
            # Set first: the client may end the test before this task runs again.
            self.termination_sent = True
            await ws.send_message(dump(TERMINATION))
            if self.script.close_after_answer:
                await ws.aclose(1000, "Session Ended")


# -- the client ---------------------------------------------------------------------------------


@attrs.define
class Outcome:
    """What the client saw, in virtual seconds."""

    opened: bool = False
    open_error: Exception | None = None
    open_time: float = 0.0
    terminate_start: float = 0.0
    terminate_end: float = 0.0
    result: aai.Termination | None = None
    error: Exception | None = None
    state: aai.State | None = None
    sender_end: float = 0.0
    block_end: float = 0.0
    leave_error: Exception | None = None


async def send(session: Session, client: ClientScript, done: trio.Event) -> None:
    """Audio frames (an int; 0 is a KeepAlive) and pauses (a float), until an action fails.

    A pause ends early once ``terminate()`` has returned, so that this task ends with it.
    A send that takes longer than ``client.patience`` is cancelled, which may break the
    session (the README: later calls raise ``trio.BrokenResourceError``).
    """
    patience = math.inf if client.patience is None else client.patience
    for item in client.sends:
        if isinstance(item, float):
            with trio.move_on_after(item):
                await done.wait()
            continue
        try:
            with trio.move_on_after(patience):
                if item:
                    await session.send_audio(bytes(item * FRAME))
                else:
                    await session.keep_alive()
        except (*DOCUMENTED, aai.LocalProtocolError):
            return  # the session failed, closed or is ending: nothing more can be sent


async def run_client(stream: trio.abc.Stream, client: ClientScript, outcome: Outcome) -> None:
    try:
        async with open_session(
            PARAMS,
            api_key=KEY,
            url=URL,
            stream=stream,
            terminate_timeout=client.terminate_timeout,
            connect_timeout=client.connect_timeout,
            max_buffered_events=client.max_buffered_events,
        ) as session:
            outcome.opened = True
            outcome.open_time = trio.current_time()
            done = trio.Event()
            async with trio.open_nursery() as tasks:
                tasks.start_soon(send, session, client, done)
                await trio.sleep(client.call_after)
                outcome.terminate_start = trio.current_time()
                try:
                    outcome.result = await session.terminate()
                except Exception as exc:
                    outcome.error = exc
                outcome.terminate_end = trio.current_time()
                outcome.state = session.state
                done.set()
            outcome.sender_end = trio.current_time()
    except Exception as exc:
        if outcome.opened:
            outcome.leave_error = exc
        else:
            outcome.open_error = exc
            outcome.open_time = trio.current_time()
    outcome.block_end = trio.current_time()


async def play(server_script: ServerScript, client_script: ClientScript) -> tuple[Outcome, Server]:
    outcome = Outcome()
    server = Server(server_script)
    # A hang shows as TooSlowError here, not as a test that never ends.
    with trio.fail_after(1000):
        async with trio.open_nursery() as nursery:
            stream = serve(nursery, server.handle, lockstep=server_script.lockstep)
            await run_client(stream, client_script, outcome)
            nursery.cancel_scope.cancel()  # the server may stall forever: stop it
    return outcome, server


def run_example(server_script: ServerScript, client: ClientScript) -> tuple[Outcome, Server]:
    """One example: its own trio.run, in virtual time."""
    return trio.run(play, server_script, client, clock=trio.testing.MockClock(autojump_threshold=0))


# -- the property ---------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(server_scripts, client_scripts)
@example(  # another task's send is cut off midway: terminate() raises BrokenResourceError
    ServerScript(
        begin=True,
        steps=(Step(kind="stop_reading"), Step(kind="garbage", text="not JSON")),
        answer_after=None,
        close_after_answer=False,
        lockstep=True,
    ),
    ClientScript(
        terminate_timeout=0.0,
        connect_timeout=10.0,
        max_buffered_events=1,
        call_after=1.0,
        sends=(0, 0, 0),
        patience=1.0,
    ),
)
@example(  # the server reads nothing: the Terminate can't be sent
    ServerScript(
        begin=True,
        steps=(Step(kind="stop_reading"), Step(kind="stall", seconds=math.inf)),
        answer_after=0.0,
        close_after_answer=True,
        lockstep=True,
    ),
    ClientScript(
        terminate_timeout=5.0,
        connect_timeout=10.0,
        max_buffered_events=10_000,
        call_after=0.0,
        sends=(100,),
        patience=None,
    ),
)
def test_terminate_ends_within_its_bound(server_script: ServerScript, client: ClientScript) -> None:
    outcome, server = run_example(server_script, client)

    if not server_script.begin:
        # open_session fails within connect_timeout; with ConnectTimeout if nothing else came.
        assert not outcome.opened
        error = outcome.open_error
        assert isinstance(error, OPEN_ERRORS), repr(error)
        assert outcome.open_time <= client.connect_timeout + EPSILON
        if all(step.kind in QUIET for step in server_script.steps):
            assert isinstance(error, ConnectTimeout), repr(error)
            assert outcome.open_time == client.connect_timeout
        return

    assert outcome.opened, repr(outcome.open_error)
    assert outcome.open_time == 0.0  # Begin comes first, at once

    # The bound: terminate() and everything the session started end within it.
    bound = outcome.terminate_start + client.terminate_timeout + CLOSE_TIMEOUT + EPSILON
    assert outcome.terminate_end <= bound, outcome.terminate_end - outcome.terminate_start
    assert outcome.sender_end <= bound, outcome.sender_end - outcome.terminate_start
    assert outcome.block_end <= bound, outcome.block_end - outcome.terminate_start

    # What it ends with: a Termination the server sent, None, or a documented error.
    if outcome.error is not None:
        assert isinstance(outcome.error, DOCUMENTED), repr(outcome.error)
        assert outcome.result is None
    elif outcome.result is not None:
        assert outcome.result == TERMINATION
        assert server.termination_sent
    # Leaving the block after terminate() may raise a failure terminate() did not: one
    # it read while closing, after raising BrokenResourceError (README: "a failure
    # nobody has seen is raised when the block is left").
    if outcome.leave_error is not None:
        assert isinstance(outcome.leave_error, DOCUMENTED), repr(outcome.leave_error)
        assert isinstance(outcome.error, trio.BrokenResourceError), repr(outcome.error)
    # The connection is over: closed, or given up after the server broke the protocol
    # (the adapter closes it with 1002), or after a send was cut off midway.
    assert outcome.state in (aai.State.CLOSED, aai.State.ERROR, aai.State.BROKEN)
    if outcome.state is aai.State.BROKEN:
        assert isinstance(outcome.error, trio.BrokenResourceError), repr(outcome.error)


# -- examples the property covers, as named cases -----------------------------------------------


QUICK = ClientScript(
    terminate_timeout=5.0,
    connect_timeout=10.0,
    max_buffered_events=10_000,
    call_after=0.0,
    sends=(),
    patience=None,
)


def test_a_server_that_answers_gives_the_termination() -> None:
    script = ServerScript(
        begin=True, steps=(), answer_after=1.0, close_after_answer=True, lockstep=False
    )
    outcome, _ = run_example(script, QUICK)
    assert outcome.result == TERMINATION
    assert outcome.terminate_end - outcome.terminate_start == 1.0


def test_a_server_that_reads_nothing_gets_the_whole_terminate_timeout() -> None:
    script = ServerScript(
        begin=True,
        steps=(Step(kind="stop_reading"), Step(kind="stall", seconds=math.inf)),
        answer_after=0.0,
        close_after_answer=True,
        lockstep=True,
    )
    client = attrs.evolve(QUICK, sends=(100,))  # fills what the server would hold
    outcome, _ = run_example(script, client)
    assert outcome.error is None
    assert outcome.result is None
    # 5 s for the Terminate that can't be sent; then the close is at once if terminate()
    # was cut off mid-send (the socket is closed), or takes CLOSE_TIMEOUT if the other
    # task was (as the scheduler orders them).
    assert outcome.terminate_end - outcome.terminate_start in (5.0, 5.0 + CLOSE_TIMEOUT)


def test_a_server_that_never_begins_times_the_opening_out() -> None:
    script = ServerScript(
        begin=False,
        steps=(Step(kind="stall", seconds=math.inf),),
        answer_after=None,
        close_after_answer=False,
        lockstep=False,
    )
    outcome, _ = run_example(script, QUICK)
    assert isinstance(outcome.open_error, ConnectTimeout)
    assert outcome.open_time == 10.0


# -- found by the property: a normal close racing terminate() ---------------------------------
#
# Session.terminate() looked at the core's state *before* it waited for the send lock.
# When another task held the lock and the server's normal close (1000) was read
# meanwhile, the core was CLOSED by the time terminate() got the lock, and
# LocalProtocolError("can't terminate in state CLOSED") came out of terminate(). And
# when no task held the lock, the same server made terminate() return None or raise
# StreamingError 1000 (trio-websocket saw the close frame before the reader did), as
# the scheduler happened to order the tasks. Each outcome came up in a third to a half
# of the runs, so each test runs the same script many times.

CLOSES_AT_ONCE = ServerScript(
    begin=True,
    steps=(Step(kind="close", code=1000),),
    answer_after=None,
    close_after_answer=False,
    lockstep=False,
)
RUNS = 40


def outcomes_of(client: ClientScript) -> set[str]:
    outcomes = set()
    for _ in range(RUNS):
        outcome, _ = run_example(CLOSES_AT_ONCE, client)
        outcomes.add(repr(outcome.error) if outcome.error else repr(outcome.result))
    return outcomes


def test_terminate_after_a_normal_close_under_a_send_returns_none() -> None:
    # Begin, then close 1000 at once; another task sends two frames; terminate() at t=0.
    outcomes = outcomes_of(attrs.evolve(QUICK, sends=(2,)))
    assert not any("LocalProtocolError" in outcome for outcome in outcomes), outcomes


def test_terminate_after_a_normal_close_always_returns_none() -> None:
    # Begin, then close 1000 at once; terminate() at t=0; nothing else sends.
    assert outcomes_of(QUICK) == {"None"}
