"""The ``aai-replay`` command: serve, check and describe recorded sessions, and the demo.

``record`` and ``synth`` make sessions (``_record.py``, ``_synth.py``); they, and
``demo`` (which needs ``aai_proto.trio``), are imported only when run.

Strategy: :func:`run` is the one place where an exception becomes an exit status
and one line of standard error, however deep in trio's exception groups it
arrived: 1 for an error, 130 for Ctrl-C, 141 (quietly) for a closed standard
output; argparse's usage errors exit with 2 before it. Nothing here imports trio
at module level, so that ``check``, ``info`` and ``synth`` work on a core-only
install and the others can say which extra is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Final, NoReturn, TextIO

from aai_proto import __version__
from aai_proto._adapter import cli

__all__ = ["main"]

_PROG: Final = "aai-replay"
_API_KEY_ENV: Final = "AAI_REPLAY_API_KEY"

# Exit statuses (README: "aai-replay commands"); usage errors exit with 2, from argparse.
_FAILED: Final = cli.FAILED


class _Failure(Exception):
    """A problem to report on one line of stderr, ending the command with status 1."""


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 0 to 65535, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text}")
    return value


def _send_timeout(text: str) -> float | None:
    if text == "off":
        return None
    value = _seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError("expected a number of seconds > 0, or off")
    return value


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def _add_replay_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pacing",
        choices=("audio", "wall"),
        default="audio",
        help="audio: each message waits for the client's audio (default); "
        "wall: also for its recorded time",
    )
    parser.add_argument(
        "--speed",
        type=_speed,
        help="with --pacing wall, play this many times faster (default 1)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="close with 4900 when the client departs from the recording",
    )
    faults = parser.add_argument_group("fault injection")
    faults.add_argument(
        "--drop-after-messages",
        type=_non_negative_int,
        metavar="N",
        help="drop the connection (no close frame) after N server messages",
    )
    faults.add_argument(
        "--drop-after-seconds",
        type=_seconds,
        metavar="T",
        help="drop the connection (no close frame) T seconds after it opens",
    )
    faults.add_argument(
        "--delay",
        type=_seconds,
        default=0.0,
        metavar="T",
        help="hold every server message back T seconds",
    )
    faults.add_argument(
        "--inject-error",
        type=int,
        metavar="CODE",
        help="send an Error with this code, then close with it",
    )
    faults.add_argument(
        "--error-after",
        type=_non_negative_int,
        metavar="N",
        help="inject the error after N server messages (default 1: after Begin)",
    )
    faults.add_argument("--error-text", metavar="TEXT", help="the injected Error's text")
    faults.add_argument(
        "--send-raw", metavar="TEXT", help="send this text frame verbatim (after --raw-after)"
    )
    faults.add_argument(
        "--raw-after",
        type=_non_negative_int,
        metavar="N",
        help="send the raw frame after N server messages (default 1)",
    )


def _global_options() -> argparse.ArgumentParser:
    """The options every command takes, before or after its name.

    Their default is SUPPRESS, so that a subcommand's parser, which doesn't see an
    option given before the command's name, leaves its value alone.
    """
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log connections to stderr",
    )
    return options


def _url_file_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url-file",
        type=Path,
        metavar="PATH",
        help="once listening, also write the URL to PATH (whole, at once: a script can wait "
        "for the file to appear); removed when the command stops",
    )


def _parser() -> argparse.ArgumentParser:
    common = _global_options()
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Replay recorded AssemblyAI streaming sessions to any client, offline.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"{_PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_command = functools.partial(commands.add_parser, parents=[common])

    serve = add_command(
        "serve",
        help="serve a session at ws://HOST:PORT/v3/ws",
        description="Serve SESSION to every client that connects, each with its own replay. "
        "Prints the URL on the first line of stdout once listening; stops on "
        "SIGINT or SIGTERM.",
    )
    serve.add_argument(
        "session",
        nargs="+",
        metavar="SESSION",
        help="a session file or a shipped session's name (see 'aai-replay list'), served to "
        "every connection; several: a scenario, one per connection in order; or a "
        "scenario manifest (NAME.scenario.json, see docs/scenario-format.md)",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=_port, default=0, help="0: any free port")
    _url_file_option(serve)
    serve.add_argument(
        "--api-key",
        help=f"require this API key (Authorization header or token query); "
        f"default: ${_API_KEY_ENV} if set, else none",
    )
    serve.add_argument(
        "--journal",
        type=Path,
        metavar="FILE",
        help="write one JSON line per connection as it ends: the request, parameters, audio, "
        "client and server messages, close, violations and departures (no credentials)",
    )
    serve.add_argument(
        "--send-timeout",
        type=_send_timeout,
        default=60.0,
        metavar="SECONDS",
        help="drop a client that takes nothing of what the server sends for this long "
        "(default 60; off: never)",
    )
    serve.add_argument(
        "--timing-log",
        type=Path,
        metavar="FILE",
        help="for benchmarks: write a line per server message sent, 'CONNECTION GATE_OPENED "
        "SENT' (seconds since the connection opened)",
    )
    _add_replay_options(serve)

    check = add_command(
        "check",
        help="validate session files",
        description="Validate session files: format, audio sidecar, server messages.",
    )
    check.add_argument("files", type=Path, nargs="+", metavar="FILE")

    info = add_command("info", help="summarize a session file")
    info.add_argument("file", type=Path, metavar="FILE")

    add_command("list", help="list the shipped sessions, by name, with their descriptions")

    demo = add_command(
        "demo",
        help="replay a shipped session through aai_proto.trio and print the transcript",
        description="Start a replay server in-process on a shipped session, stream the "
        "session's audio to it with aai_proto.trio, and print the live transcript. "
        "Needs no network and no API key.",
    )
    demo.add_argument(
        "--session",
        metavar="SESSION",
        help="the session to replay: a file or a shipped session's name "
        "(default: the shipped format_turns one)",
    )
    pace = demo.add_mutually_exclusive_group()
    pace.add_argument(
        "--realtime",
        dest="realtime",
        action="store_true",
        help="stream the audio at its own pace (the default on a terminal)",
    )
    pace.add_argument(
        "--fast",
        dest="realtime",
        action="store_false",
        help="stream the audio as fast as possible (the default when output is not a terminal)",
    )
    demo.set_defaults(realtime=None)

    record = add_command(
        "record",
        help="record sessions through a proxy to the real service",
        description="Serve a recording proxy: point a client at the printed URL; each "
        "connection is proxied upstream and written as a session file.",
    )
    record.add_argument("--out", type=Path, required=True, metavar="SESSION.jsonl")
    record.add_argument("--upstream", help="the service's URL (default: production)")
    record.add_argument("--host", default="127.0.0.1")
    record.add_argument("--port", type=_port, default=0, help="0: any free port")
    _url_file_option(record)
    record.add_argument(
        "--save-audio", action="store_true", help="also write the audio each client sent"
    )
    record.add_argument(
        "--mask",
        action="append",
        default=[],
        metavar="REGEX",
        help="replace each match with *** in every transcript and word the file records "
        "(repeatable; the frames are forwarded as they came)",
    )

    synth = add_command(
        "synth",
        help="synthesize a session from a WAV file and its transcript",
        description="Make a plausible session of streaming AUDIO.wav whose words are TEXT.",
    )
    synth.add_argument("audio", type=Path, metavar="AUDIO.wav")
    synth.add_argument("--text", required=True, help="the transcript, formatted")
    synth.add_argument("--out", type=Path, required=True, metavar="SESSION.jsonl")
    synth.add_argument("--model-style", choices=("universal", "u3"), default="universal")
    synth.add_argument("--format-turns", action="store_true")
    return parser


# -- commands -----------------------------------------------------------------------


class _UrlFile:
    """``--url-file``: the URL, written whole once known, removed when the command ends.

    The temporary file is made at once, next to ``path``, so that a path that can't
    be written fails before anything listens; the URL goes into it, and
    ``os.replace`` puts it in place: a reader sees no file, or the whole URL.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url: str | None = None
        try:
            fd, temporary = tempfile.mkstemp(
                prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
            )
        except OSError as exc:
            problem = exc.strerror or str(exc)
            raise _Failure(f"can't write the URL file {str(path)!r}: {problem}") from None
        os.close(fd)
        self.temporary = Path(temporary)

    def publish(self, url: str) -> None:
        self.temporary.write_text(url + "\n", encoding="utf-8")
        os.replace(self.temporary, self.path)
        self.url = url

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.temporary.unlink(missing_ok=True)
            # Unless another command has put its own URL there since.
            if self.url is not None and self.path.read_text(encoding="utf-8") == self.url + "\n":
                self.path.unlink()


def _run_until_signal(
    start: Callable[..., Awaitable[None]],
    url_of: Callable[[Any], str],
    out: TextIO,
    url_file: Path | None = None,
    *,
    where: str,
) -> None:
    """Start ``start`` (trio's start protocol), print its URL (and write it to
    ``url_file``), run it until SIGINT or SIGTERM.

    A failure to start, whatever its type, is a :class:`_Failure` saying why (``where``
    is the address it was to listen on).
    """
    import trio

    failure: Exception | None = None
    published = _UrlFile(url_file) if url_file is not None else None

    async def main() -> None:
        nonlocal failure
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                try:
                    started = await nursery.start(start)
                except Exception as exc:
                    failure = exc
                    return
                url = url_of(started)
                if published is not None:
                    published.publish(url)
                print(url, file=out, flush=True)
                async for _ in signals:
                    nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        if published is not None:
            published.remove()
    if failure is None:
        return
    cause = cli.leaves(failure)[0]
    if isinstance(cause, OSError) and cause.filename is None:
        raise _Failure(f"can't listen on {where}: {cause.strerror or cause}") from None
    if isinstance(cause, OSError):
        raise _Failure(_describe(cause)) from None
    # The server's or recorder's own refusal (a bad option, an unusable --out): its words.
    raise _Failure(str(cause) or type(cause).__name__) from None


def _address(args: argparse.Namespace) -> str:
    return f"{args.host}:{args.port}"


def _faults(args: argparse.Namespace) -> Any:
    from ._faults import Faults

    given = {"error_after": args.error_after, "raw_after": args.raw_after}
    try:
        return Faults(
            drop_after_messages=args.drop_after_messages,
            drop_after_seconds=args.drop_after_seconds,
            delay=args.delay,
            error_code=args.inject_error,
            error_text=args.error_text,
            raw=args.send_raw,
            **{name: value for name, value in given.items() if value is not None},
        )
    except ValueError as exc:
        raise _Failure(str(exc)) from None


def _warn_of_options_without_effect(args: argparse.Namespace) -> None:
    """Options that only qualify another one do nothing without it: say so, and go on."""
    needs = [
        ("--speed", args.speed, "--pacing wall", args.pacing == "wall"),
        ("--error-after", args.error_after, "--inject-error", args.inject_error is not None),
        ("--error-text", args.error_text, "--inject-error", args.inject_error is not None),
        ("--raw-after", args.raw_after, "--send-raw", args.send_raw is not None),
    ]
    for option, value, other, present in needs:
        if value is not None and not present:
            _say(f"warning: {option} has no effect without {other}")


def _load(spec: str | Path) -> Any:
    """A session file, or a shipped session by name."""
    from ._session import SessionFormatError, load_session
    from ._shipped import resolve_session

    try:
        path = resolve_session(spec)
    except FileNotFoundError as exc:  # a bare name, neither a file nor a shipped session
        raise _Failure(str(exc)) from None
    try:
        return load_session(path)
    except SessionFormatError as exc:
        raise _Failure(str(exc)) from None
    except OSError as exc:
        raise _Failure(f"can't read {str(spec)!r}: {exc.strerror}") from None


def _served(specs: list[str]) -> Any:
    """What ``serve`` serves: one session, a scenario manifest, or several sessions in order."""
    from ._scenario import SCENARIO_SUFFIX, Scenario, ScenarioFormatError, load_scenario

    if len(specs) == 1 and specs[0].endswith(SCENARIO_SUFFIX):
        try:
            return load_scenario(specs[0])
        except ScenarioFormatError as exc:
            raise _Failure(str(exc)) from None
        except OSError as exc:
            raise _Failure(f"can't read {specs[0]!r}: {exc.strerror}") from None
    if len(specs) == 1:
        return _load(specs[0])
    return Scenario(entries=[_load(spec) for spec in specs], name=f"{len(specs)} sessions")


def _list(args: argparse.Namespace, out: TextIO) -> int:
    from ._shipped import shipped_sessions

    sessions = shipped_sessions()
    if not sessions:
        raise _Failure("no shipped sessions are installed")
    width = max(len(s.name) for s in sessions)
    for session in sessions:
        out.write(f"{session.name:<{width}}  {session.description or ''}".rstrip() + "\n")
    return 0


def _serve(args: argparse.Namespace, out: TextIO) -> int:
    from ._server import ReplayServer

    api_key = args.api_key if args.api_key is not None else os.environ.get(_API_KEY_ENV) or None
    _warn_of_options_without_effect(args)
    try:
        server = ReplayServer(
            _served(args.session),
            host=args.host,
            port=args.port,
            pacing=args.pacing,
            speed=args.speed if args.speed is not None else 1.0,
            strict=args.strict,
            api_key=api_key,
            faults=_faults(args),
            keep_journal=False,  # a long-running server: --journal writes it out instead
            send_timeout=args.send_timeout,
        )
    except ValueError as exc:
        raise _Failure(str(exc)) from None

    with contextlib.ExitStack() as stack:
        if args.timing_log is not None:
            try:
                log = stack.enter_context(args.timing_log.open("w", encoding="utf-8"))
            except OSError as exc:
                raise _Failure(f"can't write {str(args.timing_log)!r}: {exc.strerror}") from None

            def timing(connection: int, gate_opened: float, sent: float) -> None:
                log.write(f"{connection} {gate_opened:.6f} {sent:.6f}\n")

            server.timing = timing
        if args.journal is not None:
            try:
                journal = stack.enter_context(args.journal.open("w", encoding="utf-8"))
            except OSError as exc:
                raise _Failure(f"can't write {str(args.journal)!r}: {exc.strerror}") from None

            def write_record(record: Any) -> None:
                journal.write(json.dumps(record.to_json()) + "\n")
                journal.flush()

            server.on_closed = write_record
        _run_until_signal(
            server.serve, lambda started: started.url, out, args.url_file, where=_address(args)
        )
    return 0


def _check(args: argparse.Namespace, out: TextIO) -> int:
    from ._info import check_session

    status = 0
    for path in args.files:
        findings = (
            _check_manifest(path) if str(path).endswith(".scenario.json") else check_session(path)
        )
        for finding in findings:
            print(finding, file=out)
        if any(f.level == "error" for f in findings):
            status = 1
        elif not findings:
            print(f"{path}: ok", file=out)
    return status


def _check_manifest(path: Path) -> list[Any]:
    """A scenario manifest's findings: its own rules, then each session it names."""
    import json

    from ._info import Finding, check_session
    from ._scenario import ScenarioFormatError, load_scenario

    try:
        load_scenario(path)
    except ScenarioFormatError as exc:
        return [Finding(level="error", path=str(path), line=None, problem=exc.problem)]
    except (OSError, ValueError) as exc:  # a session it names is unreadable or invalid
        return [Finding(level="error", path=str(path), line=None, problem=str(exc))]
    # The manifest is valid: check its sessions in full, as check does any session.
    named = json.loads(path.read_text(encoding="utf-8"))["connections"]
    return [f for c in named for f in check_session(path.parent / c["session"])]


def _info(args: argparse.Namespace, out: TextIO) -> int:
    from ._info import format_summary

    print(format_summary(_load(args.file)), file=out)
    return 0


def _record(args: argparse.Namespace, out: TextIO) -> int:

    from ._record import record

    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "save_audio": args.save_audio,
    }
    if args.upstream is not None:
        options["upstream"] = args.upstream
    if args.mask:
        from ._scrub import mask_text

        try:
            options["hook"] = mask_text(args.mask)
        except ValueError as exc:
            raise _Failure(f"--mask: {exc}") from None

    start = functools.partial(record, args.out, **options)
    _run_until_signal(start, str, out, args.url_file, where=_address(args))
    return 0


def _synth(args: argparse.Namespace, out: TextIO) -> int:
    from ._session import write_session
    from ._synth import audio_ref_for, synthesize

    try:
        session = synthesize(
            args.audio,
            args.text,
            model_style=args.model_style,
            format_turns=args.format_turns,
            audio_ref=audio_ref_for(args.audio, args.out),
        )
        write_session(session, args.out)
    except ValueError as exc:
        raise _Failure(str(exc)) from None
    except OSError as exc:
        raise _Failure(f"{exc.filename or args.out}: {exc.strerror}") from None
    print(f"wrote {args.out}", file=out)
    return 0


def _demo(args: argparse.Namespace, out: TextIO) -> int:
    from ._demo import DemoFailed, find_session, run_demo

    try:
        path = args.session if args.session is not None else find_session()
    except FileNotFoundError as exc:
        raise _Failure(str(exc)) from None
    session = _load(path)
    # On a terminal the live redraw is the point; elsewhere, don't keep a script waiting.
    realtime = out.isatty() if args.realtime is None else args.realtime
    try:
        return run_demo(session, out=out, realtime=realtime)
    except DemoFailed as exc:
        raise _Failure(str(exc)) from None


_COMMANDS = {
    "serve": _serve,
    "check": _check,
    "info": _info,
    "list": _list,
    "demo": _demo,
    "record": _record,
    "synth": _synth,
}


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> NoReturn:
    """Run ``aai-replay`` with ``argv`` (default: the command line) and exit."""
    status: int | str | None
    try:
        status = run(argv, out=out)
    except SystemExit as exc:  # argparse: --help, --version, a usage error
        status = exc.code
    status = cli.flush_stdout() or status
    sys.exit(status)


def run(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Run ``aai-replay`` with ``argv``; return the exit status (argparse exits on misuse).

    Raises nothing else: every failure is one line of standard error and a status.
    """
    secrets: list[str] = []  # an API key given: masked wherever it would be printed
    try:
        args = _parser().parse_args(argv)
        out = out if out is not None else sys.stdout
        secrets += [s for s in (getattr(args, "api_key", None), os.environ.get(_API_KEY_ENV)) if s]
        if getattr(args, "verbose", False):
            logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
        status = _COMMANDS[args.command](args, out)
        out.flush()
    except SystemExit:
        raise
    except BaseException as exc:  # the one place that turns exceptions into statuses
        return _exit_status(exc, secrets)
    return status


# -- errors as one line ---------------------------------------------------------------


def _exit_status(exc: BaseException, secrets: Iterable[str]) -> int:
    leaves = cli.leaves(exc)
    status = cli.signal_status(leaves, _say)
    if status is not None:
        return status
    _say("error: " + _describe(leaves[0]), secrets)
    return _FAILED


def _describe(exc: BaseException) -> str:
    """What went wrong, in words: the exception's own message, without its class name."""
    if cli.needs_trio(exc):
        return cli.NEEDS_TRIO
    if isinstance(exc, OSError):
        name = exc.filename
        problem = exc.strerror or str(exc)
        return f"{name}: {problem}" if name is not None else problem
    text = str(exc)
    if isinstance(exc, (_Failure, ValueError)) and text:
        return text
    # Not one of the failures this command expects: the class name helps a bug report.
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _say(message: str, secrets: Iterable[str] = ()) -> None:
    """Write ``aai-replay: MESSAGE`` to standard error as one line, credentials masked."""
    cli.say(_PROG, message, secrets)
