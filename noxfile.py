"""Developer tasks for aai-proto.

``nox -s tests pure lint typecheck`` is the full check CI runs; ``nox -s demo`` is the
main job; ``nox -l`` lists every session.
"""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["tests", "pure", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_external_run = True
# Every supported CPython runs the tests. Locally a missing one is skipped (and
# said so); in CI (the CI variable set) it is an error.
nox.options.error_on_missing_interpreters = bool(os.environ.get("CI"))

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]

TEST_DEPS = [
    "pytest>=8",
    "pytest-trio>=0.8",
    "hypothesis>=6.100",
    "coverage[toml]>=7.4",
    # Every test is bounded in time (pyproject.toml's timeout): a hang fails, it doesn't stall CI.
    "pytest-timeout>=2.3",
    # Independent peers for interoperability tests: the official SDK and websockets.
    "assemblyai>=0.40",
    "websockets>=15",
    # The conformance suite's scripted server runs on both event loops (tests/conformance).
    "anyio>=4.4",
]


# The interpreter whose run measures branch coverage (it slows the tests down by half).
COVERAGE_PYTHON = PYTHONS[-1]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test suite under ``python -bb`` on each CPython 3.10-3.13.

    On the newest, with branch coverage, which must be at least 99 % for
    ``aai_proto`` and 97 % for ``aai_replay`` (the two are reported apart). Extra
    arguments go to pytest, e.g. ``nox -s tests -- -k chunk``; ``nox -s tests-3.12``
    runs one version.
    """
    session.install("-e", ".[trio,asyncio,hypothesis,fast]", *TEST_DEPS)
    if session.python != COVERAGE_PYTHON:
        session.run("python", "-bb", "-m", "pytest", *session.posargs)
        return
    session.run("coverage", "erase")
    session.run("python", "-bb", "-m", "coverage", "run", "-m", "pytest", *session.posargs)
    session.run("coverage", "report", "--include=src/aai_proto/*", "--fail-under=99")
    session.run("coverage", "report", "--include=replay/aai_replay/*", "--fail-under=97")


@nox.session
def pure(session: nox.Session) -> None:
    """Run the tests without the ``fast`` extra: the core as it is with only attrs and cattrs.

    The tests that need msgspec skip; everything else must pass on the pure-Python parser.
    """
    session.install("-e", ".[trio,asyncio,hypothesis]", *TEST_DEPS)
    session.run("python", "-bb", "-m", "pytest", "-q", *session.posargs)


@nox.session
def fuzz(session: nox.Session) -> None:
    """Fuzz the parsers (``fuzz/run.py``): every input accepted or refused as documented.

    h11's invariant for parse_server_message, Client.receive_message,
    parse_client_message, ClientChecker, parse_url, aai_replay.loads_session (and
    the dumps_session round trip) and the recorder's frame decisions, 10^5 inputs
    per target: about 5 minutes, so not a
    default session (a quick run is a test, tests/fuzz). Extra arguments go to
    fuzz/run.py, e.g. ``nox -s fuzz -- --quick`` or ``-- --only url --count 1000000``.
    """
    session.install("-e", ".[trio,hypothesis,fast]")  # the recorder target needs trio
    session.run("python", "-bb", "fuzz/run.py", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Check style with ruff: lint rules and formatting."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check the packages, tests and examples with ``mypy --strict``."""
    session.install("-e", ".[trio,asyncio,hypothesis,fast]", "mypy>=1.10", "nox", *TEST_DEPS)
    session.run("mypy", "--strict")
    # fuzz/ apart: its run.py would clash with bench/run.py as a module name.
    session.run("mypy", "--strict", "fuzz")


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmarks in ``bench/``: print one table and write ``bench/results.json``.

    Not part of the default sessions: these measure, they don't test (a missed target
    is reported, not a failure). Takes a few minutes. Extra arguments go to
    ``bench/run.py``, e.g. ``nox -s bench -- --only B1,B3`` or ``-- --quick``.
    """
    session.install(".[trio,asyncio,fast]", "assemblyai>=0.40")
    session.run("python", "bench/run.py", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """The main job: replay a shipped session and stream its audio through aai_proto.trio.

    Needs no network and no API key.
    """
    session.install(".[trio]")
    session.run("aai-replay", "demo", *session.posargs)
