"""``aai-replay demo``: a shipped session replayed in-process to ``aai_proto.trio``.

No network, no key: a replay server listens on 127.0.0.1, the session's audio is
streamed to it through the trio adapter, and the transcript is printed as it
comes -- interim text rewritten in place on a terminal, each final on its own line.
It ends with the commands that do the same by hand, to try next.
"""

from __future__ import annotations

import contextlib
import shlex
from pathlib import Path
from typing import Final, TextIO

import trio

from aai_proto import Termination, Turn, TurnTracker
from aai_proto.trio import open_session

from ._server import open_replay_server
from ._session import RecordedSession

__all__ = ["DEFAULT_SESSION", "DemoFailed", "find_session", "run_demo"]

DEFAULT_SESSION: Final = "universal-format-turns.jsonl"
"""The shipped session the demo plays by default: classic turns with ``format_turns``."""

_HERE: Final = Path(__file__).resolve().parent


def _candidates(name: str) -> list[Path]:
    return [
        _HERE / "_fixtures" / "sessions" / name,  # installed with the package
        _HERE.parent.parent / "fixtures" / "sessions" / name,  # a source checkout
        Path.cwd() / "fixtures" / "sessions" / name,  # run from the project's root
    ]


def find_session(name: str = DEFAULT_SESSION) -> Path:
    """Where the shipped session ``name`` is; ``FileNotFoundError`` if it is nowhere."""
    for path in _candidates(name):
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"the shipped session {name!r} was not found; run from the project's root or pass --session"
    )


class DemoFailed(Exception):
    """The demo could not run the session, or the session failed; the message says why."""


def _shown(path: Path) -> str:
    """``path`` as a command line would take it: relative to here when it is below."""
    with contextlib.suppress(ValueError, OSError):
        path = path.resolve().relative_to(Path.cwd().resolve())
    return shlex.quote(str(path))


class _Printer:
    """Prints transcript updates: finals on their own lines, interims in place on a tty."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.pending = False

    def interim(self, text: str) -> None:
        if self.tty:
            self.out.write(f"\r\x1b[K{text}")
            self.out.flush()
            self.pending = True

    def final(self, text: str) -> None:
        prefix = "\r\x1b[K" if self.pending else ""
        self.out.write(f"{prefix}{text}\n")
        self.out.flush()
        self.pending = False

    def line(self, text: str) -> None:
        self.finish()
        self.out.write(text + "\n")
        self.out.flush()

    def finish(self) -> None:
        """End an interim line still being rewritten, so that what follows starts afresh."""
        if self.pending:
            self.pending = False
            self.out.write("\n")
            self.out.flush()


async def demo(session: RecordedSession, out: TextIO, *, realtime: bool = True) -> int:
    """Replay ``session`` to ``aai_proto.trio`` and print its transcript; return the exit status.

    Raises :class:`DemoFailed` when the session can't be replayed, or fails.
    """
    printer = _Printer(out)
    try:
        params = session.params
    except ValueError as exc:
        raise DemoFailed(f"the recorded request is invalid: {exc}") from None
    audio = session.audio_path
    if audio is None:
        raise DemoFailed("the session names no audio file to stream")
    tracker = TurnTracker(format_turns=bool(params.format_turns))
    termination: Termination | None = None
    name = session.path.name if session.path is not None else "<session>"
    failure: Exception | None = None
    try:
        async with open_replay_server(session) as server:
            printer.line(f"Replaying {name} through aai_proto.trio, offline:")
            try:
                async with (
                    open_session(params, url=server.url) as live,
                    trio.open_nursery() as nursery,
                ):

                    async def stream() -> None:
                        nonlocal failure
                        try:
                            await live.stream_file(audio, realtime=realtime)
                            await live.terminate()
                        except Exception as exc:  # reported below; stop waiting for events
                            failure = failure or exc
                            nursery.cancel_scope.cancel()

                    nursery.start_soon(stream)
                    try:
                        async for event in live:
                            if isinstance(event, Turn):
                                update = tracker.update(event)
                                if update is not None and update.is_final:
                                    printer.final(update.transcript)
                                elif update is not None:
                                    printer.interim(update.transcript)
                            elif isinstance(event, Termination):
                                termination = event
                    except Exception as exc:
                        failure = failure or exc
                        nursery.cancel_scope.cancel()
            except Exception as exc:  # connecting failed, or the session's end did
                failure = failure or exc
    finally:
        with contextlib.suppress(OSError):  # Ctrl-C, or a failure: end the interim line
            printer.finish()
    if failure is not None:
        # Raised out here: inside the server's nursery it would reach the caller in a group.
        raise DemoFailed(f"session failed: {failure}")
    printer.line("")
    if termination is not None:
        printer.line(
            f"session ended: {termination.audio_duration_seconds} s of audio, "
            f"{termination.session_duration_seconds} s in all"
        )
    else:
        printer.line("session ended without a Termination")
    if session.path is not None:
        printer.line(
            f"Try next: aai-replay serve {_shown(session.path)}, then aai-proto stream "
            f"{_shown(audio)} --fast --url <the URL it prints>"
        )
    return 0


def run_demo(session: RecordedSession, *, out: TextIO, realtime: bool = True) -> int:
    """Run the demo on ``session``; raises :class:`DemoFailed` (see :func:`demo`)."""
    return trio.run(lambda: demo(session, out, realtime=realtime))
