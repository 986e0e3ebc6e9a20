"""The ``aai-replay`` command: serve, check and describe recorded sessions, and the demo.

``record`` and ``synth`` make sessions (``_record.py``, ``_synth.py``); they, and
``demo`` (which needs ``aai_proto.trio``), are imported only when run.
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
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

__all__ = ["main"]

_API_KEY_ENV = "AAI_REPLAY_API_KEY"


class _Failure(Exception):
    """A problem to report on one line of stderr, ending the command with status 1."""


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
        default=1.0,
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
        default=1,
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
        default=1,
        metavar="N",
        help="send the raw frame after N server messages (default 1)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aai-replay",
        description="Replay recorded AssemblyAI streaming sessions to any client, offline.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log connections to stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="serve a session at ws://HOST:PORT/v3/ws",
        description="Serve SESSION to every client that connects, each with its own replay. "
        "Prints the URL on the first line of stdout once listening; stops on "
        "SIGINT or SIGTERM.",
    )
    serve.add_argument("session", type=Path, metavar="SESSION.jsonl")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=_non_negative_int, default=0, help="0: any free port")
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
        "--timing-log",
        type=Path,
        metavar="FILE",
        help="for benchmarks: write a line per server message sent, 'CONNECTION GATE_OPENED "
        "SENT' (seconds since the connection opened)",
    )
    _add_replay_options(serve)

    check = commands.add_parser(
        "check",
        help="validate session files",
        description="Validate session files: format, audio sidecar, server messages.",
    )
    check.add_argument("files", type=Path, nargs="+", metavar="FILE")

    info = commands.add_parser("info", help="summarize a session file")
    info.add_argument("file", type=Path, metavar="FILE")

    demo = commands.add_parser(
        "demo",
        help="replay a shipped session through aai_proto.trio and print the transcript",
        description="Start a replay server in-process on a shipped session, stream the "
        "session's audio to it with aai_proto.trio, and print the live transcript. "
        "Needs no network and no API key.",
    )
    demo.add_argument(
        "--session",
        type=Path,
        metavar="SESSION.jsonl",
        help="the session to replay (default: the shipped format_turns one)",
    )
    demo.add_argument(
        "--realtime",
        action="store_true",
        help="stream the audio at its own pace instead of as fast as possible",
    )

    record = commands.add_parser(
        "record",
        help="record sessions through a proxy to the real service",
        description="Serve a recording proxy: point a client at the printed URL; each "
        "connection is proxied upstream and written as a session file.",
    )
    record.add_argument("--out", type=Path, required=True, metavar="SESSION.jsonl")
    record.add_argument("--upstream", help="the service's URL (default: production)")
    record.add_argument("--host", default="127.0.0.1")
    record.add_argument("--port", type=_non_negative_int, default=0)
    record.add_argument(
        "--save-audio", action="store_true", help="also write the audio each client sent"
    )

    synth = commands.add_parser(
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


def _run_until_signal(
    start: Callable[..., Awaitable[None]], url_of: Callable[[Any], str], out: TextIO
) -> None:
    """Start ``start`` (trio's start protocol), print its URL, run it until SIGINT or SIGTERM.

    A failure to start (``OSError``, ``ValueError``) is raised as it is.
    """
    import trio

    failure: Exception | None = None

    async def main() -> None:
        nonlocal failure
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                try:
                    started = await nursery.start(start)
                except (OSError, ValueError) as exc:
                    failure = exc
                    return
                print(url_of(started), file=out, flush=True)
                async for _ in signals:
                    nursery.cancel_scope.cancel()

    trio.run(main)
    if failure is not None:
        raise failure


def _faults(args: argparse.Namespace) -> Any:
    from ._faults import Faults

    try:
        return Faults(
            drop_after_messages=args.drop_after_messages,
            drop_after_seconds=args.drop_after_seconds,
            delay=args.delay,
            error_code=args.inject_error,
            error_after=args.error_after,
            error_text=args.error_text,
            raw=args.send_raw,
            raw_after=args.raw_after,
        )
    except ValueError as exc:
        raise _Failure(str(exc)) from None


def _load(path: Path) -> Any:
    from ._session import SessionFormatError, load_session

    try:
        return load_session(path)
    except SessionFormatError as exc:
        raise _Failure(str(exc)) from None
    except OSError as exc:
        raise _Failure(f"can't read {str(path)!r}: {exc.strerror}") from None


def _serve(args: argparse.Namespace, out: TextIO) -> int:
    from ._server import ReplayServer

    api_key = args.api_key if args.api_key is not None else os.environ.get(_API_KEY_ENV) or None
    try:
        server = ReplayServer(
            _load(args.session),
            host=args.host,
            port=args.port,
            pacing=args.pacing,
            speed=args.speed,
            strict=args.strict,
            api_key=api_key,
            faults=_faults(args),
            keep_journal=False,  # a long-running server: --journal writes it out instead
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
        try:
            _run_until_signal(server.serve, lambda started: started.url, out)
        except OSError as exc:
            raise _Failure(f"can't listen on {args.host}:{args.port}: {exc.strerror}") from None
    return 0


def _check(args: argparse.Namespace, out: TextIO) -> int:
    from ._info import check_session

    status = 0
    for path in args.files:
        findings = check_session(path)
        for finding in findings:
            print(finding, file=out)
        if any(f.level == "error" for f in findings):
            status = 1
        elif not findings:
            print(f"{path}: ok", file=out)
    return status


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

    try:
        _run_until_signal(functools.partial(record, args.out, **options), str, out)
    except ValueError as exc:
        raise _Failure(str(exc)) from None
    except OSError as exc:
        raise _Failure(f"can't listen on {args.host}:{args.port}: {exc.strerror}") from None
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
    from ._demo import run_demo

    return run_demo(args.session, out=out, realtime=args.realtime)


_COMMANDS = {
    "serve": _serve,
    "check": _check,
    "info": _info,
    "demo": _demo,
    "record": _record,
    "synth": _synth,
}


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> NoReturn:
    """Run ``aai-replay`` with ``argv`` (default: the command line) and exit."""
    sys.exit(run(argv, out=out))


def run(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Run ``aai-replay`` with ``argv``; return the exit status (argparse exits on misuse)."""
    args = _parser().parse_args(argv)
    out = out if out is not None else sys.stdout
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        return _COMMANDS[args.command](args, out)
    except _Failure as exc:
        print(f"aai-replay: error: {exc}", file=sys.stderr)
        return 1
