"""What the adapters and the command lines share (``aai_proto._adapter``), in process."""

from __future__ import annotations

import errno
import importlib
import io
import os
import socket
import ssl
import sys

import pytest

from aai_proto._adapter import cli
from aai_proto._adapter.errors import HANG_UP, describe_connect_error
from aai_proto._adapter.target import Target


def test_leaves_flattens_nested_groups() -> None:
    if cli._GROUPS == ():  # pragma: no cover - Python 3.10 without trio's backport
        pytest.skip("no exception groups here")
    group_type = cli._GROUPS[0]
    inner = ValueError("inner")
    nested = group_type("outer", [group_type("mid", [inner]), KeyboardInterrupt()])
    assert cli.leaves(nested)[0] is inner
    assert isinstance(cli.leaves(nested)[1], KeyboardInterrupt)
    plain = OSError("x")
    assert cli.leaves(plain) == [plain]


def test_signal_status() -> None:
    said: list[str] = []
    assert cli.signal_status([KeyboardInterrupt()], said.append) == cli.INTERRUPTED
    assert said == ["interrupted"]
    assert cli.signal_status([ValueError()], said.append) is None


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (OSError(errno.ECONNREFUSED, "Connection refused"), "Connection refused"),
        (FileNotFoundError(errno.ENOENT, "No such file", "a.wav"), "no such file: a.wav"),
        (IsADirectoryError(errno.EISDIR, "Is a directory", "d"), "d is a directory, not a file"),
        (PermissionError(errno.EACCES, "Permission denied", "p"), "permission denied: p"),
        (OSError(errno.EIO, "I/O error", "f"), "f: I/O error"),
    ],
)
def test_os_errors_in_words(exc: OSError, words: str) -> None:
    assert cli.describe_os_error(exc) == words


def test_say_writes_one_line_with_secrets_masked(capsys: pytest.CaptureFixture[str]) -> None:
    cli.say("prog", "error: key K3Y\nfailed", ["K3Y"])
    assert capsys.readouterr().err == "prog: error: key *** failed\n"


def test_a_closed_pipe_is_silenced_with_141(monkeypatch: pytest.MonkeyPatch) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    stdout = open(write_end, "w", encoding="utf-8")  # noqa: SIM115 - closed below
    try:
        monkeypatch.setattr(sys, "stdout", stdout)
        stdout.write("x" * 10)
        assert cli.flush_stdout() == cli.BROKEN_PIPE
        # Standard output now goes to the null device: the last flush cannot fail.
        stdout.write("more")
        stdout.flush()
    finally:
        monkeypatch.undo()
        stdout.close()


def test_flush_stdout_of_an_open_stream_is_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert cli.flush_stdout() is None


def test_silencing_a_stdout_that_is_no_file_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken(io.StringIO):
        def flush(self) -> None:
            raise BrokenPipeError

    monkeypatch.setattr(sys, "stdout", Broken())
    assert cli.flush_stdout() == cli.BROKEN_PIPE  # no fileno(): nothing to redirect


class _Attempts(Exception):
    """As an exception group: the error of each address tried (3.10 has no ExceptionGroup)."""

    def __init__(self, exceptions: list[Exception]) -> None:
        super().__init__("attempts")
        self.exceptions = exceptions


def _trios(host: str, port: int, *errors: Exception) -> OSError:
    """An OSError as trio raises it when no address could be connected to."""
    exc = OSError(f"all attempts to connect to {host}:{port} failed")
    exc.__cause__ = _Attempts(list(errors))
    return exc


REFUSED = os.strerror(errno.ECONNREFUSED)
UNREACHABLE = os.strerror(errno.ENETUNREACH)


@pytest.mark.parametrize(
    ("exc", "host", "words"),
    [
        # trio: the reasons are in the cause, one error per address
        (
            _trios("h", 1, ConnectionRefusedError(errno.ECONNREFUSED, "x"), ValueError("odd")),
            "h",
            f"all attempts to connect to h:1 failed ({REFUSED}; odd)",
        ),
        # asyncio, one address
        (
            OSError(errno.ECONNREFUSED, "Connect call failed ('127.0.0.1', 1)"),
            "127.0.0.1",
            f"all attempts to connect to 127.0.0.1:1 failed ({REFUSED})",
        ),
        # asyncio, several: one message quoting each
        (
            OSError(
                "Multiple exceptions: [Errno 111] Connect call failed ('::1', 1, 0, 0), "
                "[Errno 101] Network is unreachable"
            ),
            "localhost",
            f"all attempts to connect to localhost:1 failed "
            f"({'; '.join(sorted([REFUSED, UNREACHABLE]))})",
        ),
        (
            OSError(errno.ECONNREFUSED, "x"),
            "::1",
            f"all attempts to connect to [::1]:1 failed ({REFUSED})",
        ),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "h", None),
        (ConnectionResetError(), "h", HANG_UP),
        (ssl.SSLEOFError(8, "EOF occurred in violation of protocol"), "h", HANG_UP),
        (ssl.SSLCertVerificationError(1, "certificate verify failed"), "h", None),
        (OSError("no results found for hostname lookup: h:1"), "h", None),
        (OSError(), "h", "OSError"),
    ],
)
def test_connect_errors_in_words(exc: OSError, host: str, words: str | None) -> None:
    """Both adapters word the OSError that stopped a connection so (``None``: as ``str()``)."""
    assert describe_connect_error(exc, host, 1) == (str(exc) if words is None else words)


def test_a_url_urllib_cannot_split_shows_only_the_redacted_form() -> None:
    with pytest.raises(ValueError, match=r"^not a valid URL: 'shown'$") as raised:
        Target.from_url("ws://[::1/v3/ws", shown="shown")
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__


def test_aai_proto_trio_imports_without_trio_and_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import aai_proto.trio

    try:
        for name in ("trio", "trio_websocket"):
            monkeypatch.setitem(sys.modules, name, None)  # importing them raises ImportError
        for name in ("aai_proto.trio._session", "aai_proto.trio._audio"):
            monkeypatch.delitem(sys.modules, name)  # imported again, without trio
        for name in ("open_session", "Session", "CLOSE_TIMEOUT", "DEFAULT_CONNECT_TIMEOUT"):
            monkeypatch.delattr(aai_proto.trio, name)  # reload() keeps a module's old names
        monkeypatch.delattr(aai_proto.trio, "read_wav_format")
        reloaded = importlib.reload(aai_proto.trio)
        assert reloaded.ConnectError is not None  # what needs no trio is there
        with pytest.raises(ModuleNotFoundError, match=r'pip install "aai-proto\[trio\]"'):
            _ = reloaded.open_session
        with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
            _ = reloaded.nothing
    finally:
        monkeypatch.undo()
        for name in ("__getattr__", "_MISSING_EXTRA"):  # what the reload without trio added
            vars(aai_proto.trio).pop(name, None)
        importlib.reload(aai_proto.trio)
    assert not hasattr(aai_proto.trio, "__getattr__")
    assert aai_proto.trio.open_session is not None
