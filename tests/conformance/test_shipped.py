"""Every shipped session, played by the replay server, gives both adapters the recorded events."""

from __future__ import annotations

import json
import time
from pathlib import Path

import anyio
import pytest

from aai_proto import Begin, ServerError, ServerEvent, StreamingError, parse_server_message
from aai_replay import BackgroundReplayServer, RecordedSession, ServerMessage, load_session
from tests.conformance.conftest import Adapter, both

SESSIONS = sorted((Path(__file__).resolve().parents[2] / "fixtures" / "sessions").glob("*.jsonl"))


def recorded_events(session: RecordedSession) -> list[ServerEvent]:
    return [
        parse_server_message(json.dumps(dict(e.message)))
        for e in session.entries
        if isinstance(e, ServerMessage)
    ]


@pytest.mark.parametrize("path", SESSIONS, ids=[p.stem for p in SESSIONS])
@both
async def test_the_adapter_receives_the_recorded_events(adapter: Adapter, path: Path) -> None:
    session = load_session(path)
    audio = session.audio_path
    assert audio is not None
    received: list[ServerEvent] = []
    failures: list[StreamingError] = []
    with BackgroundReplayServer(session) as server:
        async with (
            adapter.open_session(session.params, url=server.url) as live,
            anyio.create_task_group() as group,
        ):

            async def stream() -> None:
                try:
                    await live.stream_file(audio, realtime=False)
                    await live.terminate()
                except StreamingError:
                    pass  # the iteration reports it too

            group.start_soon(stream)
            try:
                async for event in live:
                    received.append(event)
            except StreamingError as exc:
                failures.append(exc)
    expected = recorded_events(session)
    begin, recorded_begin = received[0], expected[0]
    assert isinstance(begin, Begin)
    assert isinstance(recorded_begin, Begin)
    assert begin.id != recorded_begin.id
    assert begin.expires_at > time.time() + 3 * 3600 - 60
    assert received[1:] == expected[1:]
    errors = [e for e in expected if isinstance(e, ServerError)]
    assert [(f.code, f.message) for f in failures] == [(e.error_code, e.error) for e in errors]


def test_every_shipped_session_is_covered() -> None:
    names = {p.stem for p in SESSIONS}
    assert {"universal-format-turns", "server-error-3005", "u3-pro"} <= names
