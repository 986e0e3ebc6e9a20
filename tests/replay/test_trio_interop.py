"""Interoperability: ``aai_proto.trio`` against the replay server, for every shipped session."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import trio

from aai_proto import Begin, ServerError, ServerEvent, StreamingError, parse_server_message
from aai_proto.trio import open_session
from aai_replay import RecordedSession, ServerMessage, load_session, open_replay_server

SESSIONS = sorted((Path(__file__).resolve().parents[2] / "fixtures" / "sessions").glob("*.jsonl"))


def recorded_events(session: RecordedSession) -> list[ServerEvent]:
    return [
        parse_server_message(json.dumps(dict(e.message)))
        for e in session.entries
        if isinstance(e, ServerMessage)
    ]


@pytest.mark.parametrize("path", SESSIONS, ids=[p.stem for p in SESSIONS])
async def test_the_trio_adapter_receives_the_recorded_events(path: Path) -> None:
    session = load_session(path)
    audio = session.audio_path
    assert audio is not None
    received: list[ServerEvent] = []
    failures: list[StreamingError] = []
    async with (
        open_replay_server(session) as server,
        open_session(session.params, url=server.url) as live,
        trio.open_nursery() as nursery,
    ):

        async def stream() -> None:
            try:
                await live.stream_file(audio, realtime=False)
                await live.terminate()
            except StreamingError:
                pass  # the iteration reports it too

        nursery.start_soon(stream)
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
