"""Real processes for the command-line tests: started, read with a bound, and stopped.

The tests that interrupt a command send it a real SIGINT. A process started in
the background by a non-interactive shell (as CI may run the suite) ignores
SIGINT, and its children inherit that: Python then installs no
``KeyboardInterrupt`` handler and Ctrl-C does nothing. So :func:`popen` starts
each command with SIGINT at its default, as a terminal gives it.
"""

from __future__ import annotations

import queue
import signal
import subprocess
import threading
from collections.abc import Iterator
from typing import IO

import pytest

TIMEOUT = 60
"""Seconds any one wait on a process may take."""

Processes = list["subprocess.Popen[str]"]


def started_processes() -> Iterator[Processes]:
    """For a test module's ``processes`` fixture: the processes a test starts; any
    still running at its end are killed."""
    started: Processes = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=TIMEOUT)


def popen(
    processes: Processes, argv: list[str], env: dict[str, str], stdout: int = subprocess.PIPE
) -> subprocess.Popen[str]:
    """Start ``argv`` (text I/O, standard error piped) with SIGINT at its default."""
    # A handler (any but SIG_IGN) is reset to the default in the child at exec.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.PIPE, text=True, env=env)
    finally:
        signal.signal(signal.SIGINT, previous)
    processes.append(process)
    return process


def read_line(stream: IO[str] | None, what: str) -> str:
    """The next line of ``stream``, waiting at most TIMEOUT seconds."""
    assert stream is not None
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True)
    reader.start()
    try:
        line = lines.get(timeout=TIMEOUT)
    except queue.Empty:  # pragma: no cover - a process that hangs
        pytest.fail(f"no {what} within {TIMEOUT} s")
    assert line, f"the process ended before printing {what}"
    return line.rstrip("\n")
