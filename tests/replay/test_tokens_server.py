"""Temporary tokens end to end: minted by the replay server, good for one session.

The request is the core's (``TokenRequest``), sent with the standard library's HTTP
client; sessions are opened with ``aai_proto.trio`` (the token in the
``Authorization`` header), a raw WebSocket client (the token in the query, as the
Node SDK and browsers send it) and the official SDK. All on 127.0.0.1, bounded.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import trio
from assemblyai.streaming.v3 import StreamingClient, StreamingClientOptions
from websockets.sync.client import connect

from aai_proto import StreamingError, TokenRequest, build_url, parse_token_response
from aai_proto.trio import open_session
from aai_replay import BackgroundRecorder, BackgroundReplayServer, load_session
from tests._sdk import SDK_WARNINGS, listen, sdk_parameters

pytestmark = SDK_WARNINGS

PLAIN = Path(__file__).resolve().parents[2] / "fixtures" / "sessions" / "synth-plain.jsonl"
KEY = "replay-key-42"


@pytest.fixture
def server() -> Iterator[BackgroundReplayServer]:
    with BackgroundReplayServer(PLAIN, api_key=KEY) as running:
        yield running


Listening = BackgroundReplayServer | BackgroundRecorder


def ask(server: Listening, target: str, key: str | None = KEY) -> tuple[int, str]:
    """``GET target`` on the server, with the key: the status and the body."""
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.request("GET", target, headers={"Authorization": key} if key else {})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def mint(server: BackgroundReplayServer, **fields: int) -> str:
    request = TokenRequest(**{"expires_in_seconds": 60, **fields})
    assert request.url(server.url).startswith(f"http://127.0.0.1:{server.port}/v3/token?")
    status, body = ask(server, request.target)
    assert status == 200
    return parse_token_response(body).token


def trio_session(server: Listening, token: str) -> list[str]:
    session = load_session(PLAIN)
    audio = session.audio_path
    assert audio is not None

    async def main() -> list[str]:
        with trio.fail_after(30):
            async with open_session(session.params, url=server.url, token=token) as live:
                await live.stream_file(audio, realtime=False)
                await live.terminate()
                return [type(event).__name__ async for event in live]

    return trio.run(main)


def test_a_token_opens_one_session_for_aai_proto(server: BackgroundReplayServer) -> None:
    token = mint(server)
    events = trio_session(server, token)
    assert events[0] == "Begin"
    assert events[-1] == "Termination"
    with pytest.raises(StreamingError) as reused:
        trio_session(server, token)
    assert reused.value.code == 1008
    assert token not in json.dumps([r.to_json() for r in server.journal])


def test_a_token_in_the_query_works_too(server: BackgroundReplayServer) -> None:
    token = mint(server)
    url = build_url(load_session(PLAIN).params, base_url=server.url, token=token)
    with connect(url, open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "Begin"


def test_an_expired_token_is_refused(server: BackgroundReplayServer) -> None:
    token = mint(server, expires_in_seconds=1)
    time.sleep(1.2)
    with pytest.raises(StreamingError) as expired:
        trio_session(server, token)
    assert expired.value.code == 1008


def test_the_official_sdk_streams_with_a_token(server: BackgroundReplayServer) -> None:
    session = load_session(PLAIN)
    token = mint(server)
    client = StreamingClient(StreamingClientOptions(token=token, api_host=server.api_host))
    received, errors = listen(client)
    client.connect(sdk_parameters(session))
    client.disconnect(terminate=True)
    assert errors == []
    names = [name for name, _ in received]
    assert (names[0], names[-1]) == ("BeginEvent", "TerminationEvent")


@pytest.mark.parametrize(
    ("target", "key", "status", "error"),
    [
        ("/v3/token?expires_in_seconds=60", None, 401, "Invalid API key"),
        ("/v3/token?expires_in_seconds=60", "wrong", 401, "Invalid API key"),
        ("/v3/token?expires_in_seconds=0", KEY, 400, "Invalid 'expires_in_seconds'"),
    ],
)
def test_a_bad_token_request(
    server: BackgroundReplayServer, target: str, key: str | None, status: int, error: str
) -> None:
    got, body = ask(server, target, key)
    assert got == status
    assert json.loads(body)["error"].startswith(error)


def test_the_recorder_passes_a_token_request_through_and_records_nothing_of_it(
    server: BackgroundReplayServer, tmp_path: Path
) -> None:
    out = tmp_path / "call.jsonl"
    with BackgroundRecorder(out, upstream=server.url) as recorder:
        status, body = ask(recorder, TokenRequest(expires_in_seconds=60).target)
        assert status == 200
        token = parse_token_response(body).token
        assert list(tmp_path.iterdir()) == []  # the token request is not a session
        events = trio_session(recorder, token)
    assert (events[0], events[-1]) == ("Begin", "Termination")
    assert [p.name for p in tmp_path.iterdir()] == ["call.jsonl"]
    assert token not in out.read_text()
    assert load_session(out).close.code == 1000  # type: ignore[union-attr]


def test_a_token_request_that_is_no_http_gets_400(server: BackgroundReplayServer) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        raw.sendall(b"GET /v3/token?expires_in_seconds=60 HTTP/1.1\r\n\r\n")  # no Host
        assert raw.recv(100).startswith(b"HTTP/1.1 400 Bad Request\r\n")


def test_the_recorder_answers_502_when_the_upstream_cannot_be_reached(tmp_path: Path) -> None:
    import socket

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # nothing listens there once closed
    with BackgroundRecorder(tmp_path / "r.jsonl", upstream=f"ws://127.0.0.1:{port}/v3/ws") as rec:
        status, body = ask(rec, TokenRequest(expires_in_seconds=60).target)
        assert (status, body) == (502, "")
        with socket.create_connection(("127.0.0.1", rec.port), timeout=10) as raw:
            raw.sendall(b"GET /v3/token?expires_in_seconds=60 HTTP/1.1\r\n\r\n")  # no Host
            assert raw.recv(100).startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert list(tmp_path.iterdir()) == []
