"""The ``aai-proto`` command: ``aai-proto stream AUDIO`` prints a live transcript.

It runs on trio (the default) or, with ``--runtime asyncio``, on asyncio; it lives
in ``aai_proto.trio`` (``python -m aai_proto.trio`` runs it), where it began.

Transcripts go to standard output: on a terminal the current turn's interim text
is redrawn in place and each final turn gets its own line; elsewhere only the final
turns are written, one per line; with ``--json``, every server event is one JSON
object per line. Status (the ``Termination`` summary) and errors go to standard
error, errors as one line. Exit status: 0 on success, 1 on an error, 2 on a usage
error, 130 when interrupted, 141 when standard output is a pipe closed early
(``| head -1``), which ends the command quietly.

Strategy: :func:`main` is the one place where an exception becomes an exit status
and one line of standard error -- whatever raised it, and however deep in trio's
exception groups it arrived (Ctrl-C does, from inside the session's nursery). The
command is written once, against the API both adapters share: a runtime is only
its ``open_session``, a way to run a coroutine, and a way to show events while
the audio goes out (:class:`_Trio`, :class:`_Asyncio`). The module imports
neither runtime until the command has been read, so that the command, installed
with the core, can say which extra is missing, and ``--runtime asyncio`` works
where trio is not installed.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import os
import shutil
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from contextlib import AbstractAsyncContextManager
from functools import partial
from typing import Any, Final, Protocol, TextIO, TypeVar
from urllib.parse import quote, urlencode

import attrs

from aai_proto import (
    DEFAULT_URL,
    AudioFormat,
    InvalidParameter,
    ProtocolError,
    ServerEvent,
    StreamingError,
    StreamingParams,
    Termination,
    Turn,
    TurnTracker,
    __version__,
    dump_server_message,
    parse_url,
)
from aai_proto._adapter import cli
from aai_proto._adapter.errors import ConnectError, HandshakeRejected
from aai_proto._adapter.sources import RAW_SUFFIXES, check_format, read_wav_format

__all__ = ["main"]

_PROG = "aai-proto"
_KEY_VARIABLE = "ASSEMBLYAI_API_KEY"
_CLEAR_LINE = "\r\x1b[2K"

# Exit statuses (README: "The aai-proto stream command"): 0, 1, 2, 130 and 141.
_FAILED: Final = cli.FAILED
_USAGE: Final = cli.USAGE
_BODY_CHARS: Final = 200  # of a rejected upgrade's body, shown on the error line

_T = TypeVar("_T")

# Every parameter name the core reads from a URL, for "did you mean" hints.
_KNOWN_PARAMS: Final = tuple(
    field.name for field in attrs.fields(StreamingParams) if "kind" in field.metadata
)


def _param(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected name=value, got {text!r}")
    if name == "token":
        # Never echo it back: it is a credential.
        raise argparse.ArgumentTypeError("a token is not a parameter: give it with --token")
    return name, value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_PROG, description="AssemblyAI Universal Streaming v3 from the command line."
    )
    parser.add_argument("--version", action="version", version=f"{_PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    stream = commands.add_parser(
        "stream",
        help="stream an audio file and print the live transcript",
        description="Stream a mono 16-bit PCM WAV file, or a raw audio file (.raw, .pcm) in "
        "the encoding and sample rate its --param options give, and print the live transcript.",
    )
    stream.add_argument(
        "audio",
        metavar="AUDIO",
        help="the file to stream: WAV, or raw audio when its name ends in .raw or .pcm",
    )
    stream.add_argument("--url", default=DEFAULT_URL, help="the service URL (default: %(default)s)")
    auth = stream.add_mutually_exclusive_group()
    auth.add_argument(
        "--api-key", help=f"the API key (default: the {_KEY_VARIABLE} environment variable)"
    )
    auth.add_argument("--token", help="a temporary streaming token, instead of an API key")
    pace = stream.add_mutually_exclusive_group()
    pace.add_argument(
        "--realtime",
        dest="realtime",
        action="store_true",
        default=True,
        help="send the audio at the pace it plays (the default)",
    )
    pace.add_argument(
        "--fast",
        dest="realtime",
        action="store_false",
        help="send the audio as fast as the connection takes it (local servers)",
    )
    stream.add_argument(
        "--param",
        metavar="NAME=VALUE",
        type=_param,
        action="append",
        default=[],
        help="a connection parameter, written as in the URL query (repeatable), "
        "e.g. --param format_turns=true; sample_rate defaults to a WAV file's",
    )
    stream.add_argument("--json", action="store_true", help="print every event as a JSON line")
    stream.add_argument(
        "--runtime",
        choices=tuple(_RUNTIMES),
        default="trio",
        help="the event loop to stream on: trio (the default; the trio extra) or asyncio "
        "(the asyncio extra); the same output either way",
    )
    return parser


def _params(pairs: list[tuple[str, str]], fmt: AudioFormat | None) -> StreamingParams:
    """The parameters given, read as the URL query reads them; a WAV file's rate by default."""
    if fmt is not None and "sample_rate" not in {name for name, _ in pairs}:
        pairs = [("sample_rate", str(fmt.sample_rate)), *pairs]
    return parse_url("?" + urlencode(pairs))


def _file_format(path: str) -> AudioFormat | None:
    """A WAV file's format; ``None`` for raw audio (checked to be readable now, not later)."""
    if path.lower().endswith(RAW_SUFFIXES):
        with open(path, "rb"):
            return None
    return read_wav_format(path)


class _Display:
    """Writes events as transcripts, or as JSON lines."""

    def __init__(self, out: TextIO, *, json_lines: bool, format_turns: bool) -> None:
        self._out = out
        self._json = json_lines
        self._tty = out.isatty()
        self._tracker = TurnTracker(format_turns=format_turns)
        self._interim = False  # an interim transcript is on the screen

    def show(self, event: ServerEvent) -> None:
        if self._json:
            self._write(dump_server_message(event) + "\n")
            return
        if not isinstance(event, Turn):
            return
        update = self._tracker.update(event)
        if update is None:
            return
        prefix = _CLEAR_LINE if self._tty else ""
        if update.is_final:
            self._write(f"{prefix}{update.transcript}\n")
            self._interim = False
        elif self._tty:
            self._write(prefix + _fit(update.transcript, shutil.get_terminal_size().columns))
            self._interim = True

    def finish(self) -> None:
        if self._interim:  # keep the last interim text visible
            self._write("\n")
            self._interim = False

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()


def _fit(text: str, columns: int) -> str:
    # An interim line must stay on one row, or "\r" cannot redraw it: keep its end.
    room = max(columns - 1, 4)
    return text if len(text) <= room else "..." + text[len(text) - room + 3 :]


# -- the runtimes ---------------------------------------------------------------------


class _Session(Protocol):
    """What the command uses of a session: the API both adapters' ``Session`` share."""

    @property
    def session_id(self) -> str: ...

    async def stream_file(self, path: str, *, realtime: bool = ...) -> None: ...

    async def terminate(self) -> Termination | None: ...

    async def aclose(self) -> None: ...

    def __aiter__(self) -> AsyncIterator[ServerEvent]: ...


_Stop = Callable[[], None]
"""Stops the audio and the display at once: what the display calls when it cannot go on."""


class _Runtime(Protocol):
    """Where the command runs: trio or asyncio. Made once the command line is read:
    making one imports its runtime (``ModuleNotFoundError`` when its extra is missing)."""

    def open_session(
        self, params: StreamingParams, *, api_key: str | None, token: str | None, url: str
    ) -> AbstractAsyncContextManager[_Session]: ...

    def run(self, main: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
        """Run ``main`` in a new event loop; return its result."""
        ...

    async def alongside(
        self, send: Callable[[], Awaitable[None]], show: Callable[[_Stop], Awaitable[None]]
    ) -> None:
        """Await ``send()`` while ``show(stop)`` runs beside it; return when both are done.

        ``stop()`` cancels both; it is not an error.
        """
        ...


class _Trio:
    def __init__(self) -> None:
        import trio  # noqa: F401 - the first thing that needs the extra

        from ._session import open_session

        self.open_session = open_session

    def run(self, main: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
        import trio

        return trio.run(main)

    async def alongside(
        self, send: Callable[[], Awaitable[None]], show: Callable[[_Stop], Awaitable[None]]
    ) -> None:
        import trio

        async with trio.open_nursery() as nursery:
            nursery.start_soon(show, nursery.cancel_scope.cancel)
            await send()


class _Asyncio:
    def __init__(self) -> None:
        from aai_proto.asyncio import open_session  # the first thing that needs the extra

        self.open_session = open_session

    def run(self, main: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
        import asyncio

        return asyncio.run(main())

    async def alongside(
        self, send: Callable[[], Awaitable[None]], show: Callable[[_Stop], Awaitable[None]]
    ) -> None:
        import asyncio

        sending = asyncio.ensure_future(send())

        def stop() -> None:
            sending.cancel()  # show returns once it has called this

        showing = asyncio.ensure_future(show(stop))
        try:
            # wait(), not await: a task that stop() cancelled is no error here. If
            # this task is cancelled (Ctrl-C), wait() raises and the finally cancels both.
            await asyncio.wait([sending])
            await asyncio.wait([showing])
        finally:
            sending.cancel()
            showing.cancel()
            await asyncio.wait([sending, showing])
        for task in (sending, showing):
            if not task.cancelled() and (exc := task.exception()) is not None:
                raise exc  # pragma: no cover - send and show record their failures


_RUNTIMES: Final[dict[str, Callable[[], _Runtime]]] = {"trio": _Trio, "asyncio": _Asyncio}


# -- the stream command ------------------------------------------------------------------


async def _stream(
    runtime: _Runtime, args: argparse.Namespace, params: StreamingParams, display: _Display
) -> tuple[str, Termination | None]:
    """Stream the file, showing events as they come; return the session id and its end."""
    api_key = args.api_key or (None if args.token else os.environ.get(_KEY_VARIABLE) or None)
    opened = runtime.open_session(params, api_key=api_key, token=args.token, url=args.url)
    async with opened as session:
        # Events are shown as they come while the audio goes out. Failures are
        # recorded, not raised, so that no exception group reaches main() (but
        # Ctrl-C does).
        errors: list[Exception] = []
        termination = None

        async def send() -> None:
            nonlocal termination
            try:
                await session.stream_file(args.audio, realtime=args.realtime)
                termination = await session.terminate()
            except Exception as exc:
                errors.insert(0, exc)
                await session.aclose()  # the events before the failure are still shown

        try:
            await runtime.alongside(send, partial(_show_events, session, display, errors))
        finally:
            with contextlib.suppress(OSError):  # standard output may be what failed
                display.finish()
        if errors:
            raise errors[0]
        return session.session_id, termination


async def _show_events(
    session: _Session, display: _Display, errors: list[Exception], stop: _Stop
) -> None:
    try:
        async for event in session:
            try:
                display.show(event)
            except Exception as exc:  # standard output is gone: stop sending too
                errors.append(exc)
                stop()
                return
    except Exception:
        # The session failed. Every later call raises the same failure, so the
        # sending task reports it; here it only ends the display.
        return


def _warn_unknown_params(params: StreamingParams) -> None:
    """Name each parameter the core does not know, with the known one it most resembles."""
    for name in params.extra:
        close = difflib.get_close_matches(name, _KNOWN_PARAMS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        _say(
            f"warning: {name!r} is not a parameter aai-proto knows{hint}; "
            "it is sent as given, and the service ignores parameters it does not know"
        )


def _run(argv: list[str] | None, secrets: list[str]) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return 0 if exc.code is None else int(exc.code)
    env_key = os.environ.get(_KEY_VARIABLE)
    secrets += [s for s in (args.api_key, args.token, env_key) if s]
    if args.url == DEFAULT_URL and not (args.api_key or args.token or env_key):
        _say(f"error: no API key: give --api-key or --token, or set {_KEY_VARIABLE}")
        return _USAGE
    runtime = _RUNTIMES[args.runtime]()  # imports it: a missing extra shows here
    fmt = _file_format(args.audio)
    params = _params(args.param, fmt)
    if fmt is not None:
        check_format(args.audio, fmt, AudioFormat.from_params(params))
    _warn_unknown_params(params)
    display = _Display(sys.stdout, json_lines=args.json, format_turns=bool(params.format_turns))
    session_id, termination = runtime.run(partial(_stream, runtime, args, params, display))
    if termination is None:
        _say(
            f"error: session {session_id} ended without Termination; "
            "the last transcripts may be missing"
        )
        return _FAILED
    _say(
        f"session {session_id} ended: {termination.audio_duration_seconds} s of audio, "
        f"{termination.session_duration_seconds} s session"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status. Raises nothing."""
    secrets: list[str] = []  # credentials given: masked wherever they would be printed
    try:
        status = _run(argv, secrets)
        status = cli.flush_stdout() or status
    except BaseException as exc:  # the one place that turns exceptions into statuses
        return _exit_status(exc, secrets)
    return status


# -- errors as one line ---------------------------------------------------------------


def _exit_status(exc: BaseException, secrets: Iterable[str]) -> int:
    leaves = cli.leaves(exc)
    status = cli.signal_status(leaves, _say)
    if status is not None:
        return status
    first = leaves[0]
    _say("error: " + _describe(first), secrets)
    return _USAGE if isinstance(first, InvalidParameter) else _FAILED


def _describe(exc: BaseException) -> str:
    """What went wrong, in words: the exception's own message, without its class name."""
    extra = cli.missing_extra(exc)
    if extra == "trio":
        return cli.NEEDS_TRIO
    if extra is not None:
        return f'--runtime {extra} needs the {extra} extra: pip install "aai-proto[{extra}]"'
    if isinstance(exc, HandshakeRejected):
        body = _one_line(exc.body.decode("utf-8", "replace"), _BODY_CHARS)
        return f"{exc}: {body}" if body else str(exc)
    if isinstance(exc, OSError):
        return cli.describe_os_error(exc)
    text = str(exc)
    if isinstance(exc, (ValueError, ProtocolError, StreamingError, ConnectError)) and text:
        return text
    # Not one of the failures this command expects: the class name helps a bug report.
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _one_line(text: str, limit: int) -> str:
    shown = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def _say(message: str, secrets: Iterable[str] = ()) -> None:
    """Write ``aai-proto: MESSAGE`` to standard error as one line, credentials masked
    (as given and as a URL carries them)."""
    cli.say(_PROG, message, [f for s in secrets for f in {s, quote(s, safe="")}])
