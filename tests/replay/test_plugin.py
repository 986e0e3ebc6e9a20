"""The pytest plugin's fixtures, and the background-thread server they run."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio_websocket
from websockets.asyncio.client import connect as async_connect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as sync_connect

from aai_replay import (
    BackgroundReplayServer,
    RecordedSession,
    close_reason,
    load_session,
    write_session,
)

QUERY = "?sample_rate=16000&encoding=pcm_s16le"
FIXTURE = "fixtures/sessions/synth-plain.jsonl"


@pytest.mark.aai_replay(FIXTURE)
def test_the_url_fixture_serves_a_sync_test(aai_replay_url: str) -> None:
    assert aai_replay_url.startswith("ws://127.0.0.1:")
    assert aai_replay_url.endswith("/v3/ws")
    with sync_connect(aai_replay_url + QUERY) as ws:
        begin = json.loads(ws.recv(timeout=10))
    assert begin["type"] == "Begin"


@pytest.mark.aai_replay(FIXTURE, api_key="the-key")
def test_the_url_fixture_serves_an_asyncio_test(aai_replay_url: str) -> None:
    async def main() -> list[Any]:
        headers = {"Authorization": "the-key"}
        async with async_connect(aai_replay_url + QUERY, additional_headers=headers) as ws:
            return [json.loads(await ws.recv())]

    assert [m["type"] for m in asyncio.run(main())] == ["Begin"]


@pytest.mark.aai_replay(session=FIXTURE, api_key="the-key")
async def test_the_url_fixture_serves_a_trio_test(aai_replay_url: str) -> None:
    async with trio_websocket.open_websocket_url(aai_replay_url + QUERY + "&token=the-key") as ws:
        begin = json.loads(await ws.get_message())
    assert begin["type"] == "Begin"


ABSOLUTE = Path(__file__).resolve().parents[2] / FIXTURE


@pytest.mark.aai_replay(ABSOLUTE)
def test_the_url_fixture_takes_an_absolute_path(aai_replay_url: str) -> None:
    with sync_connect(aai_replay_url + QUERY) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "Begin"


@pytest.mark.aai_replay(load_session(ABSOLUTE), pacing="wall", speed=1000)
def test_the_url_fixture_takes_a_session_object(aai_replay_url: str) -> None:
    with sync_connect(aai_replay_url + QUERY) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "Begin"


@pytest.mark.parametrize("aai_replay_url", [FIXTURE], indirect=True)
@pytest.mark.aai_replay(strict=True, verdict=False)
def test_the_url_fixture_takes_an_indirect_parameter(aai_replay_url: str) -> None:
    with (
        sync_connect(aai_replay_url + "?sample_rate=8000") as ws,
        pytest.raises(ConnectionClosed) as info,
    ):
        ws.recv(timeout=10)
    close = info.value.rcvd
    assert close is not None
    assert (close.code, close.reason) == (
        4900,
        # Cut to fit a close frame: the journal has each difference whole.
        close_reason(
            "request differs: sample_rate recorded 16000, got 8000; "
            "speech_model recorded universal-streaming-english, got (not sent)"
        ),
    )


def test_the_server_factory_starts_servers_with_options(
    aai_replay_server: Callable[..., BackgroundReplayServer],
    basic_session: RecordedSession,
    sessions_dir: Path,
) -> None:
    first = aai_replay_server(basic_session)
    second = aai_replay_server(sessions_dir / "u3-pro.jsonl", pacing="wall", speed=4)
    assert first.running
    assert second.running
    assert first.port != second.port
    assert first.api_host == f"ws://127.0.0.1:{first.port}"
    assert second.server.options.speed == 4
    with sync_connect(first.url + QUERY) as ws:
        assert json.loads(ws.recv(timeout=10))["id"] != "rec-id"


def test_fixture_use_mistakes_are_reported(tmp_path: Path, basic_session: RecordedSession) -> None:
    write_session(basic_session, tmp_path / "here.jsonl")
    (tmp_path / "test_uses.py").write_text(
        "import pytest\n"
        "def test_no_session(aai_replay_url):\n"
        "    pass\n"
        "@pytest.mark.aai_replay('here.jsonl')\n"
        "def test_relative_to_rootdir(aai_replay_url):\n"
        "    assert aai_replay_url.endswith('/v3/ws')\n"
        "@pytest.mark.aai_replay('missing.jsonl')\n"
        "def test_missing_file(aai_replay_url):\n"
        "    pass\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfE", "test_uses.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "1 passed, 2 errors" in out
    assert (
        "aai_replay_url needs a session: mark the test @pytest.mark.aai_replay(SESSION) "
        "or parametrize aai_replay_url indirectly" in out
    )
    assert "ERROR test_uses.py::test_missing_file - FileNotFoundError" in out


# -- BackgroundReplayServer -----------------------------------------------------------


def test_a_background_server_starts_once_and_stops_idempotently(
    basic_session: RecordedSession,
) -> None:
    server = BackgroundReplayServer(basic_session)
    server.stop()  # never started: nothing to do
    states = [server.running]
    with server:
        states.append(server.running)
        with pytest.raises(RuntimeError, match="already started"):
            server.start()
    states.append(server.running)
    assert states == [False, True, False]
    server.stop()


def test_a_background_server_reports_a_busy_port(basic_session: RecordedSession) -> None:
    with BackgroundReplayServer(basic_session) as first:
        second = BackgroundReplayServer(basic_session, port=first.port)
        with pytest.raises(OSError, match=r"(?i)address already in use"):
            second.start()
        assert not second.running
        second.stop()  # the failure was reported once, by start()


def test_a_background_server_that_fails_reports_it_on_stop(
    basic_session: RecordedSession,
) -> None:
    server = BackgroundReplayServer(basic_session)
    crash = threading.Event()

    async def failing(*, task_status: Any) -> None:
        server.server._listening = True
        task_status.started(server.server)
        await trio.to_thread.run_sync(crash.wait)
        raise RuntimeError("crashed")

    server.server.serve = failing  # type: ignore[method-assign,assignment]
    server.start()
    crash.set()
    with pytest.raises(BaseException) as info:  # noqa: PT011 - an exception group
        server.stop()
    assert info.group_contains(RuntimeError, match="crashed")
    server.stop()  # reported once
