"""Interoperability: the official SDK (assemblyai), sync and asyncio, against the replay server.

An independent client: it must receive exactly the recorded events -- the same
messages, parsed by its own models -- with only Begin's id and expiry rewritten.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from assemblyai.streaming.v3 import (
    AsyncStreamingClient,
    StreamingClient,
    StreamingClientOptions,
)

from aai_replay import (
    BackgroundReplayServer,
    ClientAudio,
    RecordedSession,
    ServerMessage,
    load_session,
)
from tests._sdk import SDK_WARNINGS, Received, expected_events, listen, sdk_parameters

pytestmark = SDK_WARNINGS

API_KEY = "replay-test-key"


def audio_frames(session: RecordedSession) -> list[bytes]:
    """The session's audio, cut as the recorded client cut it."""
    audio = session.audio_bytes()
    frames, start = [], 0
    for entry in session.entries:
        if isinstance(entry, ClientAudio):
            frames.append(audio[start : start + entry.nbytes])
            start += entry.nbytes
    return frames


def received_matches(received: list[tuple[str, Any]], session: RecordedSession) -> None:
    expected = expected_events(session)
    assert [name for name, _ in received] == [name for name, _ in expected]
    (begin_name, begin), (_, recorded_begin) = received[0], expected[0]
    assert begin_name == "BeginEvent"
    assert begin.id != recorded_begin.id
    assert begin.expires_at.timestamp() > time.time() + 3 * 3600 - 60
    assert received[1:] == expected[1:]


@pytest.fixture
def fixture_server(sessions_dir: Path) -> Iterator[Callable[[str], tuple[RecordedSession, str]]]:
    servers: list[BackgroundReplayServer] = []

    def start(name: str) -> tuple[RecordedSession, str]:
        session = load_session(sessions_dir / name)
        server = BackgroundReplayServer(session, api_key=API_KEY).start()
        servers.append(server)
        return session, server.api_host

    yield start
    for server in servers:
        server.stop()


def run_sync_sdk(
    session: RecordedSession, api_host: str, *, api_key: str = API_KEY, stream: bool = True
) -> tuple[Received, list[Any]]:
    """Stream the session's audio with the SDK's ``StreamingClient``; return what it reported."""
    client = StreamingClient(StreamingClientOptions(api_key=api_key, api_host=api_host))
    received, errors = listen(client)
    client.connect(sdk_parameters(session))
    if stream:
        client.stream(audio_frames(session))
    client.disconnect(terminate=True)
    return received, errors


def run_async_sdk(session: RecordedSession, api_host: str) -> tuple[Received, list[Any]]:
    """The same with the SDK's ``AsyncStreamingClient``."""

    async def main() -> tuple[Received, list[Any]]:
        client = AsyncStreamingClient(StreamingClientOptions(api_key=API_KEY, api_host=api_host))
        reported = listen(client)
        await client.connect(sdk_parameters(session))
        await client.stream(audio_frames(session))
        await client.disconnect(terminate=True)
        return reported

    return asyncio.run(main())


@pytest.mark.parametrize(
    "name",
    ["universal-format-turns.jsonl", "u3-pro.jsonl", "diarization.jsonl", "heartbeat.jsonl"],
)
def test_the_sync_sdk_receives_the_recorded_events(
    fixture_server: Callable[[str], tuple[RecordedSession, str]], name: str
) -> None:
    session, api_host = fixture_server(name)
    received, errors = run_sync_sdk(session, api_host)
    assert errors == []
    received_matches(received, session)


@pytest.mark.parametrize(
    "name",
    ["universal-2026-formatted.jsonl", "language-detection.jsonl", "synth-plain.jsonl"],
)
def test_the_asyncio_sdk_receives_the_recorded_events(
    fixture_server: Callable[[str], tuple[RecordedSession, str]], name: str
) -> None:
    session, api_host = fixture_server(name)
    received, errors = run_async_sdk(session, api_host)
    assert errors == []
    received_matches(received, session)


def recorded_error(session: RecordedSession) -> tuple[int, str]:
    (error,) = [
        e.message
        for e in session.entries
        if isinstance(e, ServerMessage) and e.message.get("type") == "Error"
    ]
    return error["error_code"], error["error"]


def assert_recorded_error(received: Received, errors: list[Any], session: RecordedSession) -> None:
    """The SDK reported the recorded Error, and every recorded event before it."""
    code, text = recorded_error(session)
    assert [(error.code, str(error)) for error in errors] == [(code, text)]
    expected = [(n, m) for n, m in expected_events(session) if n != "ErrorEvent"]
    assert [n for n, _ in received] == [n for n, _ in expected]
    assert received[1:] == expected[1:]  # Begin's id and expires_at are rewritten


@pytest.mark.parametrize("name", ["server-error-3005.jsonl", "inactivity-timeout.jsonl"])
def test_the_sync_sdk_gets_the_recorded_error(
    fixture_server: Callable[[str], tuple[RecordedSession, str]], name: str
) -> None:
    session, api_host = fixture_server(name)
    assert_recorded_error(*run_sync_sdk(session, api_host), session)


def test_the_asyncio_sdk_gets_the_recorded_error(
    fixture_server: Callable[[str], tuple[RecordedSession, str]],
) -> None:
    session, api_host = fixture_server("server-error-3005.jsonl")
    assert_recorded_error(*run_async_sdk(session, api_host), session)


def test_the_sdk_with_a_wrong_key_gets_1008(
    fixture_server: Callable[[str], tuple[RecordedSession, str]],
) -> None:
    session, api_host = fixture_server("synth-plain.jsonl")
    received, errors = run_sync_sdk(session, api_host, api_key="wrong", stream=False)
    assert received == []
    assert [(e.code, str(e)) for e in errors] == [
        (1008, "Unauthorized connection: invalid API key or token")
    ]


def test_the_journal_holds_what_the_sdk_sent(sessions_dir: Path) -> None:
    from assemblyai.streaming.v3 import StreamingSessionParameters

    from aai_proto import ForceEndpoint, Terminate, UpdateConfiguration

    session = load_session(sessions_dir / "universal-format-turns.jsonl")
    with BackgroundReplayServer(session, api_key="KEY-SECRET-1") as server:
        client = StreamingClient(
            StreamingClientOptions(api_key="KEY-SECRET-1", api_host=server.api_host)
        )
        _, errors = listen(client)
        client.connect(sdk_parameters(session))
        frames = audio_frames(session)
        client.stream(frames[:10])
        client.force_endpoint()  # type: ignore[no-untyped-call]
        client.set_params(StreamingSessionParameters(max_turn_silence=700))
        client.stream(frames[10:])
        client.disconnect(terminate=True)
        deadline = time.monotonic() + 10
        while server.journal[0].close is None:
            assert time.monotonic() < deadline, "the connection did not close"
            time.sleep(0.01)
        [record] = server.journal
    assert errors == []
    assert [m.message for m in record.client_messages] == [
        ForceEndpoint(),
        UpdateConfiguration(max_turn_silence=700),
        Terminate(),
    ]
    assert record.params == session.params
    assert record.audio.bytes == len(session.audio_bytes())
    assert record.audio.frames == len(frames)
    assert record.violations == ()
    assert "KEY-SECRET" not in repr(record) + json.dumps(record.to_json())
