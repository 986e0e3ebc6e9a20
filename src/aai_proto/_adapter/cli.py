"""What both command lines (``aai-proto``, ``aai-replay``) do with an exception: one line.

A command-line tool never prints a traceback: Ctrl-C exits 130 with one word, a
closed output pipe exits 141 in silence (as a shell reports a C tool that SIGPIPE
stopped), a missing extra says which to install, and anything else is one line
in words, credentials masked. Needs no trio: trio's exception groups are looked
into when trio (or Python 3.11's builtins) made them.
"""

from __future__ import annotations

import builtins
import contextlib
import importlib
import os
import sys
from collections.abc import Callable, Iterable
from typing import Final

__all__ = [
    "BROKEN_PIPE",
    "FAILED",
    "INTERRUPTED",
    "NEEDS_TRIO",
    "USAGE",
    "describe_os_error",
    "flush_stdout",
    "leaves",
    "missing_extra",
    "needs_trio",
    "say",
    "signal_status",
]

FAILED: Final = 1
USAGE: Final = 2
INTERRUPTED: Final = 130  # 128 + SIGINT, as a shell reports a process Ctrl-C stopped
BROKEN_PIPE: Final = 141  # 128 + SIGPIPE, as a shell reports `yes | head -1`'s yes

NEEDS_TRIO: Final = 'this command needs the trio extra: pip install "aai-proto[trio]"'
# Which extra installs each module a runtime adapter imports (pyproject's extras).
_EXTRA_OF: Final = {"trio": "trio", "trio_websocket": "trio", "websockets": "asyncio"}


def _group_types() -> tuple[type[BaseException], ...]:
    """``BaseExceptionGroup``: built in from Python 3.11; before, trio's backport (and
    without trio, nothing can raise a group)."""
    group = getattr(builtins, "BaseExceptionGroup", None)
    if group is None:
        try:
            group = importlib.import_module("exceptiongroup").BaseExceptionGroup
        except ImportError:
            return ()
    return (group,)


_GROUPS: Final = _group_types()


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside ``exc``'s (nested) exception groups, or ``exc`` itself."""
    if isinstance(exc, _GROUPS):
        inner: tuple[BaseException, ...] = getattr(exc, "exceptions", ())
        return [leaf for each in inner for leaf in leaves(each)] or [exc]
    return [exc]


def needs_trio(exc: BaseException) -> bool:
    """Whether ``exc`` says the trio extra is not installed."""
    return missing_extra(exc) == "trio"


def missing_extra(exc: BaseException) -> str | None:
    """The extra (``"trio"``, ``"asyncio"``) whose absence ``exc`` reports, else None.

    A submodule counts as its package: an old ``websockets`` without
    ``websockets.asyncio`` is fixed by installing the extra too.
    """
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    return _EXTRA_OF.get(exc.name.partition(".")[0])


def signal_status(found: list[BaseException], say_: Callable[[str], None]) -> int | None:
    """130 (saying so) for a Ctrl-C among ``found``, 141 (silently) for a closed pipe, else None."""
    if any(isinstance(leaf, KeyboardInterrupt) for leaf in found):
        say_("interrupted")
        return INTERRUPTED
    if any(isinstance(leaf, BrokenPipeError) for leaf in found):
        _silence_stdout()
        return BROKEN_PIPE
    return None


def describe_os_error(exc: OSError) -> str:
    """An ``OSError`` in words, naming its file when it has one."""
    name = exc.filename
    if name is None:
        return exc.strerror or str(exc)
    if isinstance(exc, FileNotFoundError):
        return f"no such file: {name}"
    if isinstance(exc, IsADirectoryError):
        return f"{name} is a directory, not a file"
    if isinstance(exc, PermissionError):
        return f"permission denied: {name}"
    return f"{name}: {exc.strerror or exc}"


def say(prog: str, message: str, secrets: Iterable[str] = ()) -> None:
    """Write ``PROG: MESSAGE`` to standard error as one line, each secret form masked."""
    line = " ".join(message.splitlines())
    for secret in secrets:
        line = line.replace(secret, "***")
    with contextlib.suppress(OSError, ValueError):  # standard error may be gone as well
        print(f"{prog}: {line}", file=sys.stderr, flush=True)


def flush_stdout() -> int | None:
    """Flush standard output now; 141 if its pipe is closed (then silenced), else None.

    A closed pipe shows here, where it can be handled, not in the interpreter's
    last flush.
    """
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        return BROKEN_PIPE
    return None


def _silence_stdout() -> None:
    """Point standard output at the null device: its pipe is closed, and the
    interpreter's final flush must not fail (and print a traceback) on its way out."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a file: nothing will flush to it
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)
