"""The README's reconnect recipe, run on both adapters against the replay server.

The recipe (``stream_resuming``, below exactly as the README shows it) streams
audio; when the session fails with a retryable ``StreamingError`` it opens a new
one and resumes with the first frame the failed one did not take. The replay
server plays a two-connection scenario (``aai_replay.Scenario``): the first
connection fails with an injected ``Error`` 1011 after its first ``Turn`` (the
fault counts server messages: ``Begin``, then that ``Turn``), the second plays the
session. Its journal says exactly what each connection received and sent.

How many frames the client sends into the first connection before it sees the
close, and how many of them the server reads before it closes, is a race: the
frames between are lost in flight (the service acknowledges no audio). So the
first connection's count is bounded (at least the first ``Turn``'s gate, at most
what the client sent); the recipe reports where it resumed, and from there every
count is exact.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

import aai_proto as aai
from aai_proto import ServerEvent, StreamingError, StreamingParams
from aai_replay import AudioReceived, BackgroundReplayServer, Faults, load_session
from aai_replay._scenario import Scenario, ScenarioEntry
from tests.conformance.conftest import Adapter, both

# -- the recipe (the README's, verbatim) ------------------------------------------------


async def stream_resuming(
    open_session: Callable[..., AbstractAsyncContextManager[Any]],
    params: StreamingParams,
    frames: Sequence[bytes],
    *,
    realtime: bool = True,
    reconnects: int = 2,
    **options: Any,
) -> list[tuple[int, list[ServerEvent]]]:
    """Stream ``frames`` (each one ``chunk_ms`` frame), reconnecting after a retryable failure.

    ``open_session`` is ``aai_proto.trio.open_session`` or ``aai_proto.asyncio``'s;
    ``options`` go to it. When a session fails with a retryable ``StreamingError``,
    a new one resumes with the first frame the failed one did not take. Gives up
    (raises) on a failure that is not retryable, or after ``reconnects`` failures in
    a row that took no audio. Returns, for each session, the index of the frame it
    started at (its word timestamps count from there) and the events it received.
    """
    sessions: list[tuple[int, list[ServerEvent]]] = []
    sent = 0  # frames taken by the sessions so far
    failures_in_a_row = 0

    def unsent() -> Iterator[bytes]:
        nonlocal sent
        for frame in frames[sent:]:
            yield frame
            sent += 1  # asked for the next one: the session took this one

    while True:
        start = sent
        try:
            async with open_session(params, **options) as session:
                try:
                    await session.stream(unsent(), realtime=realtime)
                    await session.terminate()
                except StreamingError:
                    sessions.append((start, await received(session)))
                    raise
                sessions.append((start, await received(session)))
            return sessions
        except StreamingError as failure:
            failures_in_a_row = 0 if sent > start else failures_in_a_row + 1
            if not failure.retryable or failures_in_a_row > reconnects:
                raise


async def received(session: Any) -> list[ServerEvent]:
    """The events ``session`` received, up to its end or its failure."""
    events: list[ServerEvent] = []
    with contextlib.suppress(StreamingError):  # the failure: the caller has it
        async for event in session:
            events.append(event)
    return events


# -- the tests --------------------------------------------------------------------------

SESSION = load_session(
    Path(__file__).resolve().parents[2] / "fixtures" / "sessions" / "synth-plain.jsonl"
)
FRAME = 1600  # bytes in 50 ms of 16 kHz pcm_s16le, the default chunk_ms
AUDIO = SESSION.audio_bytes()
FRAMES = [AUDIO[i : i + FRAME] for i in range(0, len(AUDIO) - FRAME + 1, FRAME)]
FIRST_TURN_GATE = 12
"""Frames the recording's client had sent when its first ``Turn`` came."""
FIRST_TURN = aai.parse_server_message(
    json.dumps(dict(getattr(SESSION.entries[FIRST_TURN_GATE + 1], "message", {})))
)


def events_sent(server: BackgroundReplayServer, connection: int) -> list[ServerEvent]:
    """The events carried by the messages the server sent on ``connection`` (from 0)."""
    return [aai.parse_server_message(m.data) for m in server.journal[connection].server_messages]


def scenario(first: Faults, *then: Faults) -> Scenario:
    entries = [ScenarioEntry(session=SESSION, faults=f) for f in (first, *then)]
    return Scenario(entries=[*entries, SESSION], name="reconnect")


def test_the_readme_shows_the_recipe_verbatim() -> None:
    source = Path(__file__).read_text(encoding="utf-8")
    recipe = source[source.index("async def stream_resuming(") : source.index("# -- the tests")]
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert recipe.rstrip() + "\n```" in readme


def test_the_recording_is_what_the_tests_expect() -> None:
    assert len(FRAMES) == 67  # 3.36 s: the last 40 ms are not a whole frame
    assert [type(e).__name__ for e in SESSION.entries[: FIRST_TURN_GATE + 2]] == (
        ["ServerMessage"] + ["ClientAudio"] * FIRST_TURN_GATE + ["ServerMessage"]
    )


@both
async def test_a_retryable_failure_reconnects_and_resumes(adapter: Adapter) -> None:
    fault = Faults(error_code=1011, error_after=2)  # after Begin and the first Turn
    with BackgroundReplayServer(scenario(fault)) as server:
        sessions = await stream_resuming(
            adapter.open_session, SESSION.params, FRAMES, url=server.url
        )
        assert server.unplayed() == []
        journal = server.journal
        first_events, second_events = events_sent(server, 0), events_sent(server, 1)
    [(started, first), (resumed, second)] = sessions
    assert started == 0
    # What each connection received: the first, the audio up to the fault; the
    # second, everything from where the recipe resumed, then Terminate.
    taken = journal[0].audio.frames
    assert journal[0].audio == AudioReceived(frames=taken, bytes=taken * FRAME, ms=taken * 50.0)
    assert FIRST_TURN_GATE <= taken <= resumed <= len(FRAMES)
    left = len(FRAMES) - resumed
    assert journal[1].audio == AudioReceived(frames=left, bytes=left * FRAME, ms=left * 50.0)
    assert journal[0].client_messages == ()
    assert [m.message.type for m in journal[1].client_messages] == ["Terminate"]
    assert [(c.code, c.by) for c in (journal[0].close, journal[1].close) if c] == [
        (1011, "server"),
        (1000, "server"),
    ]
    # What each session saw: exactly what its connection sent.
    assert first == first_events
    assert [type(e) for e in first] == [aai.Begin, aai.Turn, aai.ServerError]
    assert first[1] == FIRST_TURN
    assert first[2] == aai.ServerError(
        error_code=1011, error="Injected error: internal server error (retryable)"
    )
    assert second == second_events
    assert isinstance(second[0], aai.Begin)
    assert isinstance(first[0], aai.Begin)
    assert second[0].id != first[0].id
    assert isinstance(second[-1], aai.Termination)


@both
async def test_a_failure_that_is_not_retryable_is_raised(adapter: Adapter) -> None:
    fault = Faults(error_code=3005, error_after=2)
    final = Faults(error_code=3007, error_after=1)  # right after Begin
    with BackgroundReplayServer(scenario(fault, final)) as server:
        with pytest.raises(StreamingError) as failed:
            await stream_resuming(
                adapter.open_session, SESSION.params, FRAMES, realtime=False, url=server.url
            )
        assert server.unplayed() == ["1 recorded connection not played: 3 of 3 in reconnect"]
        journal = server.journal
    assert (failed.value.code, failed.value.retryable) == (3007, False)
    assert [r.close.code for r in journal if r.close] == [3005, 3007]
    assert journal[0].audio.frames >= FIRST_TURN_GATE


@both
async def test_failures_in_a_row_that_take_no_audio_give_up(adapter: Adapter) -> None:
    before_begin = Faults(error_code=1011, error_after=0)  # open_session retries these
    with BackgroundReplayServer(scenario(*[before_begin] * 6)) as server:
        with pytest.raises(StreamingError) as failed:
            await stream_resuming(
                adapter.open_session,
                SESSION.params,
                FRAMES,
                realtime=False,
                url=server.url,
                reconnects=1,
                retry_delay=0,
            )
        journal = server.journal
    assert failed.value.code == 1011
    # Two open_session calls (the first, one reconnect), three attempts each.
    assert len(journal) == 6
    assert all(r.audio.frames == 0 and r.close and r.close.code == 1011 for r in journal)
