"""``aai-replay`` as a command-line tool: signals, pipes, a missing extra, options.

The tests of real-process behaviour run the command with ``sys.executable`` in a
subprocess (Ctrl-C, a closed pipe, an install without trio); servers listen on
127.0.0.1, port 0; every wait is bounded, and the ``processes`` fixture stops what
a test started.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

import aai_proto
from aai_replay import _cli, _demo
from aai_replay._cli import run
from tests._processes import (
    TIMEOUT,
    Processes,
    read_line,
    started_processes,
)
from tests._processes import popen as start

ROOT = Path(__file__).resolve().parents[2]
SESSIONS = ROOT / "fixtures" / "sessions"
AUDIO = ROOT / "fixtures" / "audio"
COMMAND = [sys.executable, "-c", "from aai_replay._cli import main; main()"]
# As if trio and trio-websocket were not installed: importing them raises ImportError.
NO_TRIO = "import sys; sys.modules['trio'] = None; sys.modules['trio_websocket'] = None; "
EXTRA = 'pip install "aai-proto[trio]"'
NEEDS_TRIO = f"aai-replay: error: this command needs the trio extra: {EXTRA}\n"
QUERY = "?sample_rate=16000&encoding=pcm_s16le"


@pytest.fixture
def env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("AAI_REPLAY_API_KEY", "PYTHONUNBUFFERED"):
        env.pop(name, None)
    env["PYTHONWARNINGS"] = "error"
    return env


@pytest.fixture
def processes() -> Iterator[Processes]:
    yield from started_processes()


def popen(
    processes: Processes, argv: list[str], env: dict[str, str], stdout: int = subprocess.PIPE
) -> subprocess.Popen[str]:
    return start(processes, [*COMMAND, *argv], env, stdout)


def run_with_closed_stdout(
    processes: Processes, argv: list[str], env: dict[str, str]
) -> tuple[int, str]:
    """Run with standard output a pipe whose read end is already closed (`| head -0`)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        process = popen(processes, argv, env, stdout=write_end)
    finally:
        os.close(write_end)
    _, err = process.communicate(timeout=TIMEOUT)
    return process.returncode, err


# -- Ctrl-C and closed pipes ------------------------------------------------------------


def test_ctrl_c_during_the_realtime_demo_exits_130_without_a_traceback(
    processes: Processes, env: dict[str, str]
) -> None:
    demo = popen(processes, ["demo", "--realtime"], env)
    read_line(demo.stdout, "the demo's first line")
    transcript = read_line(demo.stdout, "the first transcript line")
    assert transcript == "Hi, my name is Sonny."  # mid-stream: more audio is to come
    demo.send_signal(signal.SIGINT)
    _, err = demo.communicate(timeout=TIMEOUT)
    assert "Traceback" not in err
    assert (demo.returncode, err) == (130, "aai-replay: interrupted\n")


@pytest.mark.parametrize(
    ("argv", "unbuffered"),
    [
        (["check", *(str(path) for path in sorted(SESSIONS.glob("*.jsonl")))], False),
        (["check", *(str(path) for path in sorted(SESSIONS.glob("*.jsonl")))], True),
        (["info", str(SESSIONS / "diarization.jsonl")], False),
        (["info", str(SESSIONS / "diarization.jsonl")], True),
        (["--help"], False),
    ],
    ids=["check", "check-unbuffered", "info", "info-unbuffered", "help"],
)
def test_a_closed_pipe_ends_the_command_quietly(
    processes: Processes, env: dict[str, str], argv: list[str], unbuffered: bool
) -> None:
    # Buffered, the pipe's end shows when the output is flushed; unbuffered, at a print.
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    assert run_with_closed_stdout(processes, argv, env) == (141, "")


def test_a_reader_that_stops_early_ends_the_command_quietly(
    processes: Processes, env: dict[str, str], tmp_path: Path
) -> None:
    # `check MANY | head -1`: the first line is read, then the pipe closes.
    files = [str(SESSIONS / "synth-plain.jsonl")] * 3000  # more lines than a pipe holds
    argv = ["check", *files]
    process = popen(processes, argv, env)
    assert read_line(process.stdout, "a line").endswith("synth-plain.jsonl: ok")
    assert process.stdout is not None
    process.stdout.close()
    assert process.stderr is not None
    err = process.stderr.read()
    assert process.wait(timeout=TIMEOUT) == 141
    assert err == ""


# -- without the trio extra --------------------------------------------------------------


def run_without_trio(
    argv: list[str], env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    code = f"from aai_replay._cli import main; main({argv!r})"
    return subprocess.run(
        [sys.executable, "-c", NO_TRIO + code],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=TIMEOUT,
        check=False,
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", str(SESSIONS / "synth-plain.jsonl")],
        ["demo"],
        ["record", "--out", "never-written.jsonl"],
    ],
    ids=["serve", "demo", "record"],
)
def test_without_trio_a_command_that_needs_it_names_the_extra(
    env: dict[str, str], argv: list[str], tmp_path: Path
) -> None:
    result = run_without_trio(argv, env, cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", NEEDS_TRIO)
    assert list(tmp_path.iterdir()) == []


def test_without_trio_check_info_and_synth_still_work(env: dict[str, str], tmp_path: Path) -> None:
    result = run_without_trio(["check", str(SESSIONS / "synth-plain.jsonl")], env)
    assert (result.returncode, result.stderr) == (0, "")
    result = run_without_trio(["info", str(SESSIONS / "synth-plain.jsonl")], env)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith("session:")
    out = tmp_path / "s.jsonl"
    argv = ["synth", str(AUDIO / "synth-plain.wav"), "--text", "Hi there.", "--out", str(out)]
    result = run_without_trio(argv, env)
    assert (result.returncode, result.stdout, result.stderr) == (0, f"wrote {out}\n", "")


def test_without_trio_the_pytest_plugin_loads_and_its_fixtures_say_what_to_install(
    env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    (tmp_path / "test_uses.py").write_text(
        "import pytest\n"
        "def test_plain():\n"
        "    pass\n"
        f"@pytest.mark.aai_replay({str(SESSIONS / 'synth-plain.jsonl')!r})\n"
        "def test_url(aai_replay_url):\n"
        "    pass\n"
        "def test_factory(aai_replay_server):\n"
        "    pass\n",
        encoding="utf-8",
    )
    # pytest-trio and Hypothesis' trio hook would import trio themselves: a
    # core-only install has neither, so they are left out here.
    args = ["-p", "no:cacheprovider", "-p", "no:trio", "-p", "no:hypothesispytest"]
    args += ["--strict-markers", "-q", "-rE", "test_uses.py"]
    code = f"import pytest; sys.exit(pytest.main({args!r}))"
    env["COLUMNS"] = "300"  # the summary lines whole
    result = subprocess.run(
        [sys.executable, "-c", NO_TRIO + code],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "1 passed, 2 errors" in out
    message = f"the aai-replay fixtures need the trio extra: {EXTRA}"
    assert f"ERROR test_uses.py::test_url - Failed: {message}" in out
    assert f"ERROR test_uses.py::test_factory - Failed: {message}" in out
    assert "Traceback" not in out
    assert "ModuleNotFoundError" not in out


# -- options ----------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["serve", "record"])
@pytest.mark.parametrize("port", ["65536", "80000", "-1"])
def test_a_port_out_of_range_is_a_usage_error(
    command: str, port: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["serve", "s.jsonl"] if command == "serve" else ["record", "--out", "r.jsonl"]
    with pytest.raises(SystemExit) as info:
        run([*argv, "--port", port])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --port: expected a port number from 0 to 65535, got {port}" in err


@pytest.mark.parametrize(("given", "expected"), [(None, 60.0), ("0.5", 0.5), ("off", None)])
def test_send_timeout_reaches_the_server(
    given: str | None, expected: float | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aai_replay._server

    seen: dict[str, object] = {}

    class Stop(Exception):
        pass

    def fake_server(*args: object, **options: object) -> None:
        seen.update(options)
        raise Stop

    monkeypatch.setattr(aai_replay._server, "ReplayServer", fake_server)
    session = str(ROOT / "fixtures" / "sessions" / "u3-pro.jsonl")
    argv = ["serve", session] + (["--send-timeout", given] if given else [])
    assert run(argv) == 1  # Stop: an unexpected error, one line
    assert seen["send_timeout"] == expected


@pytest.mark.parametrize("text", ["0", "-1", "soon"])
def test_send_timeout_must_be_positive_or_off(
    text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        run(["serve", "s.jsonl", "--send-timeout", text])
    assert info.value.code == 2
    assert "argument --send-timeout" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["before", "after"])
def test_the_global_options_go_before_or_after_the_command(
    where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import logging

    configured: list[dict[str, object]] = []
    monkeypatch.setattr(logging, "basicConfig", lambda **kw: configured.append(kw))
    check = ["check", str(SESSIONS / "synth-plain.jsonl")]
    argv = ["-v", *check] if where == "before" else [*check, "--verbose"]
    assert run(argv, out=io.StringIO()) == 0
    assert configured == [{"level": logging.INFO, "format": "%(name)s: %(message)s"}]
    configured.clear()
    assert run(check, out=io.StringIO()) == 0
    assert configured == []


def test_version(capsys: pytest.CaptureFixture[str], env: dict[str, str]) -> None:
    with pytest.raises(SystemExit) as info:
        run(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"aai-replay {aai_proto.__version__}\n"
    # python -m aai_replay runs the command too.
    result = subprocess.run(
        [sys.executable, "-m", "aai_replay", "--version"],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        f"aai-replay {aai_proto.__version__}\n",
        "",
    )


@pytest.mark.parametrize(
    ("options", "warnings"),
    [
        (["--speed", "2"], ["--speed has no effect without --pacing wall"]),
        (["--speed", "2", "--pacing", "wall"], []),
        (["--pacing", "wall"], []),
        (["--error-after", "3"], ["--error-after has no effect without --inject-error"]),
        (["--error-text", "x"], ["--error-text has no effect without --inject-error"]),
        (["--inject-error", "3005", "--error-after", "3", "--error-text", "x"], []),
        (["--raw-after", "2"], ["--raw-after has no effect without --send-raw"]),
        (["--send-raw", "x", "--raw-after", "2"], []),
        (
            ["--raw-after", "2", "--speed", "3"],
            [
                "--speed has no effect without --pacing wall",
                "--raw-after has no effect without --send-raw",
            ],
        ),
    ],
)
def test_serve_warns_of_options_that_do_nothing(
    options: list[str],
    warnings: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    served: list[Any] = []

    def run_until_signal(*args: Any, **kw: Any) -> None:
        served.append(args)

    monkeypatch.setattr(_cli, "_run_until_signal", run_until_signal)
    assert run(["serve", str(SESSIONS / "synth-plain.jsonl"), *options]) == 0
    assert len(served) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [f"aai-replay: warning: {warning}" for warning in warnings]


def test_serve_writes_its_url_to_a_file_once_listening(
    processes: Processes, env: dict[str, str], tmp_path: Path
) -> None:
    url_file = tmp_path / "url.txt"
    argv = ["serve", str(SESSIONS / "synth-plain.jsonl"), "--url-file", str(url_file)]
    server = popen(processes, argv, env)
    deadline = time.monotonic() + TIMEOUT
    while not url_file.exists():
        assert server.poll() is None, server.communicate(timeout=TIMEOUT)
        assert time.monotonic() < deadline, "no URL file"
        time.sleep(0.02)
    # Written whole, at once: once the file exists it holds the URL, and it answers.
    url = url_file.read_text(encoding="utf-8")
    assert url.endswith("/v3/ws\n")
    assert read_line(server.stdout, "URL") == url.rstrip("\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["url.txt"]  # no temporary file left
    with connect(url.rstrip("\n") + QUERY) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "Begin"
    server.send_signal(signal.SIGINT)
    _, err = server.communicate(timeout=TIMEOUT)
    assert (server.returncode, err) == (0, "")
    assert not url_file.exists()  # a stopped server leaves no URL to connect to


def test_serve_refuses_a_url_file_it_cannot_write_before_listening(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url_file = tmp_path / "no-such-dir" / "url.txt"
    out = io.StringIO()
    argv = ["serve", str(SESSIONS / "synth-plain.jsonl"), "--url-file", str(url_file)]
    assert run(argv, out=out) == 1
    assert out.getvalue() == ""  # never listened
    assert capsys.readouterr().err == (
        f"aai-replay: error: can't write the URL file {str(url_file)!r}: "
        "No such file or directory\n"
    )


# -- record: a recorder that cannot start --------------------------------------------------


class RecorderPathError(Exception):
    """Stands for the typed error the recorder raises for an unusable --out."""


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (RecorderPathError("can't write 'x/r.jsonl': no such directory"), "can't write "),
        (FileNotFoundError(2, "No such file or directory", "x/r.jsonl"), "x/r.jsonl: No such"),
        (OSError(98, "Address already in use"), "can't listen on 127.0.0.1:0: Address already"),
        (ValueError("upstream must be a ws:// or wss:// URL"), "upstream must be a ws://"),
    ],
    ids=["typed", "path", "listen", "value"],
)
def test_record_reports_a_recorder_that_cannot_start(
    failure: Exception,
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from aai_replay import _record

    async def failing(out: Any, **options: Any) -> None:
        raise failure

    monkeypatch.setattr(_record, "record", failing)
    printed = io.StringIO()
    assert run(["record", "--out", str(tmp_path / "r.jsonl")], out=printed) == 1
    assert printed.getvalue() == ""
    err = capsys.readouterr().err
    assert err.startswith(f"aai-replay: error: {message}")
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_record_refuses_an_unusable_out_path_in_one_line(
    env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "no-such-dir" / "r.jsonl"
    result = subprocess.run(
        [*COMMAND, "record", "--out", str(out), "--url-file", str(tmp_path / "url.txt")],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT,  # a recorder that listened instead would be stopped here
        check=False,
    )
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith(f"aai-replay: error: can't record to {str(out)!r}: ")
    assert result.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # nor a URL file, nor its temporary file


# -- the demo --------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("out", "options", "realtime"),
    [
        (Terminal(), [], True),
        (io.StringIO(), [], False),
        (Terminal(), ["--fast"], False),
        (io.StringIO(), ["--realtime"], True),
    ],
)
def test_the_demo_streams_in_real_time_on_a_terminal(
    out: io.StringIO, options: list[str], realtime: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    paced: list[bool] = []

    def run_demo(session: Any, *, out: Any, realtime: bool) -> int:
        paced.append(realtime)
        return 0

    monkeypatch.setattr(_demo, "run_demo", run_demo)
    assert run(["demo", *options], out=out) == 0
    assert paced == [realtime]


def test_the_demo_says_what_it_does_in_one_short_line_and_what_to_try_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(ROOT)
    out = io.StringIO()
    assert run(["demo"], out=out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0] == "Replaying universal-format-turns.jsonl through aai_proto.trio, offline:"
    assert lines[1:] == [
        "Hi, my name is Sonny.",
        "I'd like a table for two.",
        "",
        "session ended: 4 s of audio, 4 s in all",
        "Try next: aai-replay serve fixtures/sessions/universal-format-turns.jsonl, then "
        "aai-proto stream fixtures/audio/universal-format-turns.wav --fast --url <the URL "
        "it prints>",
    ]


# -- shipped sessions by name, several sessions, scenarios -------------------------------


def test_list_names_every_shipped_session(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = sorted(p.stem for p in (ROOT / "fixtures" / "sessions").glob("*.jsonl"))
    assert [line.split()[0] for line in lines] == names
    assert any(line.startswith("u3-pro ") and "U3 (u3-rt-pro)" in line for line in lines)


def served_by(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> object:
    """What ``aai-replay serve`` hands the server, with the server itself faked."""
    import aai_replay._server

    seen: list[object] = []

    class Stop(Exception):
        pass

    def fake_server(session: object, **options: object) -> None:
        seen.append(session)
        raise Stop

    monkeypatch.setattr(aai_replay._server, "ReplayServer", fake_server)
    assert run(["serve", *argv]) == 1  # Stop: one line
    [session] = seen
    return session


def test_serve_takes_a_shipped_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from aai_replay import RecordedSession

    session = served_by(["u3-pro"], monkeypatch)
    assert isinstance(session, RecordedSession)
    assert session.params.speech_model == "u3-rt-pro"


def test_serve_takes_several_sessions_as_a_scenario(monkeypatch: pytest.MonkeyPatch) -> None:
    from aai_replay._scenario import Scenario

    scenario = served_by(["u3-pro", "synth-plain"], monkeypatch)
    assert isinstance(scenario, Scenario)
    assert [e.session.params.speech_model for e in scenario.entries] == [
        "u3-rt-pro",
        "universal-streaming-english",
    ]
    assert (scenario.select, scenario.after_last) == ("order", "refuse")


def test_serve_takes_a_manifest_and_reports_its_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from aai_replay._scenario import Scenario

    manifest = tmp_path / "x.scenario.json"
    plain = ROOT / "fixtures" / "sessions" / "synth-plain.jsonl"
    manifest.write_text(json.dumps({"aai_scenario": 1, "connections": [{"session": str(plain)}]}))
    assert isinstance(served_by([str(manifest)], monkeypatch), Scenario)
    manifest.write_text('{"aai_scenario": 1}')
    assert run(["serve", str(manifest)]) == 1
    assert capsys.readouterr().err.endswith(f'{manifest}: "connections" must be a non-empty list\n')


def test_an_unknown_name_lists_the_shipped_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["serve", "u3-pr0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("aai-replay: error: no session file 'u3-pr0', and no shipped session")
    assert "u3-pro" in err


def test_record_refuses_a_bad_mask(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert run(["record", "--out", str(tmp_path / "r.jsonl"), "--mask", "("]) == 1
    assert capsys.readouterr().err.startswith(
        "aai-replay: error: --mask: not a regular expression: '('"
    )


def test_check_validates_a_manifest_and_its_sessions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = ROOT / "fixtures" / "sessions" / "synth-plain.jsonl"
    good = tmp_path / "good.scenario.json"
    good.write_text(json.dumps({"aai_scenario": 1, "connections": [{"session": str(plain)}]}))
    bad = tmp_path / "bad.scenario.json"
    bad.write_text(json.dumps({"aai_scenario": 1, "connections": [{"session": "x.jsonl"}]}))
    assert run(["check", str(good)]) == 0
    assert capsys.readouterr().out == f"{good}: ok\n"
    assert run(["check", str(bad)]) == 1
    assert capsys.readouterr().out == (
        f"{bad}: error: connection 1: no session file 'x.jsonl' beside the manifest\n"
    )
