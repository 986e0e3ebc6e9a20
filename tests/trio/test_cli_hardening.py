"""``aai-proto`` as a real process: Ctrl-C, a closed pipe, and an install without an extra.

Each test runs the command with ``sys.executable`` in a subprocess (the only way to
send it a real SIGINT, or to give it a real pipe whose read end is gone), against an
``aai-replay serve`` subprocess on 127.0.0.1, port 0. Every wait is bounded, and
every process a test starts is stopped by the ``processes`` fixture. The streaming
tests run once per ``--runtime``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._processes import (
    TIMEOUT,
    Processes,
    popen,
    read_line,
    started_processes,
)

ROOT = Path(__file__).resolve().parents[2]
SESSION = ROOT / "fixtures" / "sessions" / "universal-format-turns.jsonl"
AUDIO = ROOT / "fixtures" / "audio" / "universal-format-turns.wav"
REPLAY = [sys.executable, "-c", "from aai_replay._cli import main; main()"]
STREAM = [sys.executable, "-m", "aai_proto.trio", "stream"]
# As if trio and trio-websocket were not installed: importing them raises ImportError.
NO_TRIO = "import sys; sys.modules['trio'] = None; sys.modules['trio_websocket'] = None; "
EXTRA = 'pip install "aai-proto[trio]"'
NO_WEBSOCKETS = "import sys; sys.modules['websockets'] = None; "
RUNTIMES = pytest.mark.parametrize("runtime", ["trio", "asyncio"])
# The shipped session's final turns, and the summary line (its id is new each time).
TRANSCRIPT = "hi my name is sonny\ni'd like a table for two\n"
SUMMARY = re.compile(r"aai-proto: session [0-9a-f-]{36} ended: 4 s of audio, 4 s session\n")


@pytest.fixture
def env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("AAI_REPLAY_API_KEY", "ASSEMBLYAI_API_KEY", "PYTHONUNBUFFERED"):
        env.pop(name, None)
    env["PYTHONWARNINGS"] = "error"
    return env


@pytest.fixture
def processes() -> Iterator[Processes]:
    yield from started_processes()


def serve(processes: Processes, env: dict[str, str]) -> str:
    """Start ``aai-replay serve`` on the shipped session; return its URL."""
    server = popen(processes, [*REPLAY, "serve", str(SESSION)], env)
    return read_line(server.stdout, "URL")


@RUNTIMES
def test_ctrl_c_mid_stream_exits_130_without_a_traceback(
    processes: Processes, env: dict[str, str], runtime: str
) -> None:
    url = serve(processes, env)
    argv = [*STREAM, str(AUDIO), "--url", url, "--realtime", "--json", "--runtime", runtime]
    client = popen(processes, argv, env)
    assert '"type":"Begin"' in read_line(client.stdout, "Begin")  # streaming has started
    client.send_signal(signal.SIGINT)
    _, err = client.communicate(timeout=TIMEOUT)
    assert "Traceback" not in err
    assert (client.returncode, err) == (130, "aai-proto: interrupted\n")


@RUNTIMES
def test_a_closed_pipe_ends_the_stream_quietly(
    processes: Processes, env: dict[str, str], runtime: str
) -> None:
    url = serve(processes, env)
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| head -1` that has already gone
    argv = [*STREAM, str(AUDIO), "--url", url, "--json", "--runtime", runtime]
    try:
        client = popen(processes, argv, env, stdout=write_end)
    finally:
        os.close(write_end)
    _, err = client.communicate(timeout=TIMEOUT)
    assert (client.returncode, err) == (141, "")


def run_without_trio(
    code: str, env: dict[str, str], without: str = NO_TRIO
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", without + code],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT,
        check=False,
    )


def test_without_trio_the_command_names_the_extra(env: dict[str, str]) -> None:
    # The console script imports aai_proto.trio._cli:main: that import must work.
    argv = ["stream", str(AUDIO), "--url", "ws://127.0.0.1:9/v3/ws"]
    result = run_without_trio(
        f"from aai_proto.trio._cli import main; sys.exit(main({argv!r}))", env
    )
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"aai-proto: error: this command needs the trio extra: {EXTRA}\n"
    # Help needs no trio.
    result = run_without_trio("from aai_proto.trio._cli import main; main(['--help'])", env)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith("usage: aai-proto")


@RUNTIMES
def test_both_runtimes_print_the_same(
    processes: Processes, env: dict[str, str], runtime: str
) -> None:
    url = serve(processes, env)
    argv = [*STREAM, str(AUDIO), "--url", url, "--fast", "--runtime", runtime]
    result = subprocess.run(
        argv, capture_output=True, text=True, env=env, timeout=TIMEOUT, check=False
    )
    assert (result.returncode, result.stdout) == (0, TRANSCRIPT)
    assert SUMMARY.fullmatch(result.stderr), result.stderr


def test_without_trio_the_asyncio_runtime_streams(
    processes: Processes, env: dict[str, str]
) -> None:
    url = serve(processes, env)  # aai-replay itself runs on trio, in its own process
    argv = ["stream", str(AUDIO), "--url", url, "--fast", "--runtime", "asyncio"]
    result = run_without_trio(
        f"from aai_proto.trio._cli import main; sys.exit(main({argv!r}))", env
    )
    assert (result.returncode, result.stdout) == (0, TRANSCRIPT)
    assert SUMMARY.fullmatch(result.stderr), result.stderr


def test_without_websockets_the_asyncio_runtime_names_its_extra(env: dict[str, str]) -> None:
    argv = ["stream", str(AUDIO), "--url", "ws://127.0.0.1:9/v3/ws", "--runtime", "asyncio"]
    result = run_without_trio(
        f"from aai_proto.trio._cli import main; sys.exit(main({argv!r}))",
        env,
        without=NO_WEBSOCKETS,
    )
    assert (result.returncode, result.stdout, result.stderr) == (
        1,
        "",
        "aai-proto: error: --runtime asyncio needs the asyncio extra: "
        'pip install "aai-proto[asyncio]"\n',
    )


def test_without_trio_the_package_says_what_to_install(env: dict[str, str]) -> None:
    result = run_without_trio("from aai_proto.trio import open_session", env)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"ModuleNotFoundError: aai_proto.trio needs trio and trio-websocket: {EXTRA}"
    )


def test_version(env: dict[str, str]) -> None:
    from aai_proto import __version__

    result = subprocess.run(
        [sys.executable, "-m", "aai_proto.trio", "--version"],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        f"aai-proto {__version__}\n",
        "",
    )
