"""A session recorded from the official SDK, which streams before Begin, replays cleanly.

The official SDK's sync ``StreamingClient`` starts streaming audio as soon as the
socket opens. Recorded through ``aai-replay record`` from a replay server that
holds every message back 150 ms (``Faults(delay=0.15)``), the session file has
``client_audio`` entries before its ``Begin``: a race, never a condition. Replayed
again (no delay), ``Begin`` must go out at once -- else ``aai_proto.trio`` and
``aai-proto stream``, which wait for ``Begin`` before they send any audio, would
never get it.

Everything listens on 127.0.0.1, port 0. The recording is made once per shipped
session (a module-scoped fixture, in its own ``trio.run``); every wait is bounded.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import wave
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import attrs
import pytest
import trio
from assemblyai.streaming.v3 import (
    StreamingClient,
    StreamingClientOptions,
)
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

import aai_proto
from aai_proto.trio import open_session
from aai_replay import (
    BackgroundReplayServer,
    ClientAudio,
    ClientMessage,
    Faults,
    RecordedSession,
    ReplayServer,
    ServerMessage,
    check_session,
    load_session,
    record,
)
from aai_replay._cli import run as replay_cli
from aai_replay._journal import ConnectionRecord
from aai_replay._server import open_replay_server
from tests._sdk import SDK_WARNINGS, expected_events, listen, sdk_parameters
from tests._websocket import connect
from tests.synth._shared import server_json

pytestmark = SDK_WARNINGS

SESSIONS = Path(__file__).resolve().parents[2] / "fixtures" / "sessions"
SDK_KEY = "sk-test-SECRET123"
RAW_TOKEN = "tok-SECRET456"
RAW_KEY = "sk-raw-SECRET789"
DELAY = 0.15
FRAME = 1600  # 50 ms of 16 kHz pcm_s16le, as the SDK's examples cut it
TIMEOUT = 20.0  # a safety net for every wait, never a synchronisation


@attrs.frozen(kw_only=True)
class SdkRecording:
    """One SDK session recorded through the proxy, and what everyone saw of it."""

    original: RecordedSession
    wav: Path
    pcm: bytes
    path: Path
    """The recorded session file."""
    sdk_events: list[tuple[str, Any]]
    """What the SDK reported: (model class name, model), in order, errors apart."""
    sdk_errors: list[Any]
    journal: list[ConnectionRecord]
    """The delaying replay server's journal: the SDK's connection, then a raw client's."""
    raw_begin: dict[str, Any]


def read_pcm(path: Path) -> bytes:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 16000)
        return wav.readframes(wav.getnframes())


def chunks(pcm: bytes) -> Iterator[bytes]:
    """The audio as the SDK is given it: an iterable of fixed-size chunks."""
    for i in range(0, len(pcm), FRAME):
        yield pcm[i : i + FRAME]


def run_sdk(session: RecordedSession, pcm: bytes, api_host: str) -> tuple[list[Any], list[Any]]:
    """Stream ``pcm`` with the SDK's sync client, then ``disconnect(terminate=True)``."""
    options = StreamingClientOptions(
        api_key=SDK_KEY,
        api_host=api_host,
        connect_timeout=5.0,
        max_connection_retries=0,
        terminate_timeout=5.0,
    )
    client = StreamingClient(options)
    events, errors = listen(client)
    client.connect(sdk_parameters(session))
    client.stream(chunks(pcm))
    client.disconnect(terminate=True)
    return events, errors


def run_raw_client(url: str) -> dict[str, Any]:
    """Connect with a token in the query and a key in the header; return the Begin."""
    target = f"{url}?sample_rate=16000&encoding=pcm_s16le&token={RAW_TOKEN}"
    with ws_connect(
        target, additional_headers={"Authorization": RAW_KEY}, open_timeout=5, close_timeout=5
    ) as ws:
        begin: dict[str, Any] = json.loads(ws.recv(timeout=5))
        ws.send(b"\0" * FRAME)
        ws.send('{"type": "Terminate"}')
        try:
            while True:
                ws.recv(timeout=5)
        except ConnectionClosed:
            pass
    return begin


async def all_closed(server: ReplayServer) -> None:
    """Wait until every connection the server journaled has closed."""
    while not all(r.close is not None for r in server.journal):
        await trio.sleep(0.01)


async def record_sdk_session(original: RecordedSession, out: Path) -> SdkRecording:
    wav = original.audio_path
    assert wav is not None
    pcm = read_pcm(wav)
    with trio.fail_after(TIMEOUT):
        async with open_replay_server(original, faults=Faults(delay=DELAY)) as upstream:
            async with trio.open_nursery() as nursery:
                url: str = await nursery.start(partial(record, out, upstream=upstream.url))
                api_host = url.removesuffix("/v3/ws")
                events, errors = await trio.to_thread.run_sync(
                    run_sdk, original, pcm, api_host, abandon_on_cancel=True
                )
                # Once the upstream side has closed, the recorder has written the close
                # too (it writes each frame before passing it on): it may stop.
                await all_closed(upstream)
                nursery.cancel_scope.cancel()
            raw_begin = await trio.to_thread.run_sync(
                run_raw_client, upstream.url, abandon_on_cancel=True
            )
            await all_closed(upstream)
            journal = upstream.journal
    return SdkRecording(
        original=original,
        wav=wav,
        pcm=pcm,
        path=out,
        sdk_events=events,
        sdk_errors=errors,
        journal=journal,
        raw_begin=raw_begin,
    )


@pytest.fixture(scope="module", params=["synth-plain", "u3-pro"])
def recording(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> SdkRecording:
    name: str = request.param
    original = load_session(SESSIONS / f"{name}.jsonl")
    out = tmp_path_factory.mktemp(name) / "sdk.jsonl"
    return trio.run(record_sdk_session, original, out)


# -- what to expect -------------------------------------------------------------------------


def sdk_finals(events: list[tuple[str, Any]]) -> list[str]:
    """The transcript of each turn's end, as the SDK reported it (no format_turns here)."""
    return [str(m.transcript) for name, m in events if name == "TurnEvent" and m.end_of_turn]


def proto_events(session: RecordedSession) -> list[aai_proto.ServerEvent]:
    return [
        aai_proto.parse_server_message(json.dumps(dict(e.message)))
        for e in session.entries
        if isinstance(e, ServerMessage)
    ]


# -- 1-4: the SDK streams before Begin, and the recording is a valid session ----------------


def test_the_sdk_got_every_event_through_the_recorder(recording: SdkRecording) -> None:
    assert recording.sdk_errors == []
    received, expected = recording.sdk_events, expected_events(recording.original)
    assert [name for name, _ in received] == [name for name, _ in expected]
    assert received[0][0] == "BeginEvent"
    assert received[0][1].id != expected[0][1].id  # the replay's own session id
    assert received[1:] == expected[1:]
    assert received[-1][0] == "TerminationEvent"
    finals = sdk_finals(received)
    assert finals  # the sessions have turns
    assert finals == sdk_finals(expected)


def test_the_recording_has_audio_before_begin_and_checks_clean(
    recording: SdkRecording,
) -> None:
    recorded = load_session(recording.path)
    kinds = [type(e).__name__ for e in recorded.entries]
    begin_at = next(
        i
        for i, e in enumerate(recorded.entries)
        if isinstance(e, ServerMessage) and e.message["type"] == "Begin"
    )
    # The race really happened: the SDK streamed while Begin was held back.
    assert "ClientAudio" in kinds[:begin_at]
    # Every frame the SDK sent is there, in its chunks, then Terminate.
    frames = [e.nbytes for e in recorded.entries if isinstance(e, ClientAudio)]
    assert frames == [len(c) for c in chunks(recording.pcm)]
    assert [e.message for e in recorded.entries if isinstance(e, ClientMessage)] == [
        {"type": "Terminate"}
    ]
    assert server_json(recorded) == server_json(recording.original)
    close = recorded.close
    assert close is not None
    assert close.code == 1000
    assert recorded.header.request.query == {
        "sample_rate": "16000",
        "encoding": "pcm_s16le",
        "speech_model": recording.original.params.speech_model,
    }
    # Valid: check_session and `aai-replay check` find nothing at all.
    assert check_session(recording.path) == []
    out = io.StringIO()
    assert replay_cli(["check", str(recording.path)], out=out) == 0
    assert out.getvalue() == f"{recording.path}: ok\n"
    assert "SECRET" not in recording.path.read_text(encoding="utf-8")


# -- 5: the recording replays, Begin first, to aai_proto.trio and to `aai-proto stream` -----


async def test_the_recording_replays_to_aai_proto_trio(recording: SdkRecording) -> None:
    recorded = load_session(recording.path)
    params = recorded.params
    tracker = aai_proto.TurnTracker(format_turns=bool(params.format_turns))
    events: list[aai_proto.ServerEvent] = []
    with trio.fail_after(TIMEOUT):
        async with open_replay_server(recorded) as server:
            async with open_session(
                params, api_key=SDK_KEY, url=server.url, connect_timeout=5.0
            ) as session:
                # open_session returned: Begin came before any audio was sent.
                assert isinstance(session.begin, aai_proto.Begin)
                await session.stream_file(recording.wav, realtime=False)
                termination = await session.terminate()
                events.extend([event async for event in session])
            journal = server.journal
    expected = proto_events(recorded)
    assert isinstance(events[0], aai_proto.Begin)
    assert isinstance(expected[0], aai_proto.Begin)
    assert events[0].id != expected[0].id
    assert events[1:] == expected[1:]
    assert isinstance(termination, aai_proto.Termination)
    assert events[-1] == termination
    finals = [
        update.transcript
        for event in events
        if isinstance(event, aai_proto.Turn)
        and (update := tracker.update(event)) is not None
        and update.is_final
    ]
    assert finals == sdk_finals(recording.sdk_events)
    [live] = journal
    assert live.violations == ()
    assert live.departures == ()
    assert [type(m.message).__name__ for m in live.client_messages] == ["Terminate"]


async def test_begin_is_not_held_back_by_the_clock_either(recording: SdkRecording) -> None:
    # Paced by the wall clock at 1/20 speed, the recorded Begin (t >= 0.1 s, after
    # all that audio) would be due after 2 s or more; it goes out at once.
    recorded = load_session(recording.path)
    begin_t = next(
        e.t
        for e in recorded.entries
        if isinstance(e, ServerMessage) and e.message["type"] == "Begin"
    )
    assert begin_t / 0.05 >= 2.0
    query = urlencode(list(recorded.header.request.query.items()))
    with trio.fail_after(TIMEOUT):
        async with (
            open_replay_server(recorded, pacing="wall", speed=0.05) as server,
            connect(f"{server.url}?{query}") as ws,
        ):
            with trio.fail_after(1.0):
                first = json.loads(await ws.get_message())
    assert first["type"] == "Begin"


def test_aai_proto_stream_prints_the_transcript_of_the_recording(
    recording: SdkRecording,
) -> None:
    recorded = load_session(recording.path)
    command = [
        sys.executable,
        "-c",
        "import sys; from aai_proto.trio._cli import main; sys.exit(main())",
        "stream",
        str(recording.wav),
        "--fast",
        "--api-key",
        SDK_KEY,
    ]
    for name, value in recorded.header.request.query.items():
        if name != "sample_rate":
            command += ["--param", f"{name}={value}"]
    with BackgroundReplayServer(recorded) as server:
        done = subprocess.run(
            [*command, "--url", server.url],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        journal = server.journal
    assert (done.returncode, done.stderr.count("\n")) == (0, 1), done.stderr
    assert done.stdout.splitlines() == sdk_finals(recording.sdk_events)
    termination = recorded.entries[-2]
    assert isinstance(termination, ServerMessage)
    assert termination.message["type"] == "Termination"
    [live] = journal
    assert live.violations == ()
    assert live.departures == ()
    begin = json.loads(
        next(m.data for m in live.server_messages if isinstance(m.data, str) and "Begin" in m.data)
    )
    assert done.stderr == (
        f"aai-proto: session {begin['id']} ended: "
        f"{termination.message['audio_duration_seconds']} s of audio, "
        f"{termination.message['session_duration_seconds']} s session\n"
    )


# -- 6: the delaying server's journal of the SDK's connection, and no credential in it -------


def test_the_journal_of_the_sdk_connection(recording: SdkRecording) -> None:
    sdk, raw = recording.journal
    assert (sdk.connection, raw.connection) == (1, 2)
    assert sdk.request.path == "/v3/ws"
    assert [type(m.message).__name__ for m in sdk.client_messages] == ["Terminate"]
    assert sdk.params is not None
    assert sdk.params.sample_rate == 16000
    assert sdk.params.encoding == "pcm_s16le"
    assert sdk.params.speech_model == recording.original.params.speech_model
    assert sdk.audio.bytes == len(recording.pcm) > 0
    assert sdk.audio.frames == len(list(chunks(recording.pcm)))
    assert sdk.audio.ms == pytest.approx(len(recording.pcm) / 32)
    assert sdk.violations == ()
    assert sdk.close is not None
    assert sdk.close.code == 1000
    # The server held every message back, yet sent them all, Begin first.
    sent = [json.loads(m.data)["type"] for m in sdk.server_messages if isinstance(m.data, str)]
    assert sent == [m["type"] for m in server_json(recording.original)]
    assert sdk.server_messages[0].t >= DELAY
    # The raw client: a token in the query, a key in the header; accepted all the same.
    assert recording.raw_begin["type"] == "Begin"
    assert raw.request.query == {"sample_rate": "16000", "encoding": "pcm_s16le"}
    assert [type(m.message).__name__ for m in raw.client_messages] == ["Terminate"]
    for record_ in recording.journal:
        assert "SECRET" not in json.dumps(record_.to_json())
        assert "SECRET" not in repr(record_)
