"""Developer tasks for aai-proto.

``nox -s tests lint typecheck`` is the full check CI runs; ``nox -s demo`` is the
main job; ``nox -l`` lists every session.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_external_run = True

TEST_DEPS = [
    "pytest>=8",
    "pytest-trio>=0.8",
    "hypothesis>=6.100",
    "coverage[toml]>=7.4",
    # Independent peers for interoperability tests: the official SDK and websockets.
    "assemblyai>=0.40",
    "websockets>=13",
]


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite under ``python -bb`` with branch coverage.

    The coverage of ``src/aai_proto`` is reported and must be at least 95 %
    (``aai_replay`` is reported beside it). Extra arguments go to pytest,
    e.g. ``nox -s tests -- -k chunk``.
    """
    session.install("-e", ".[trio,hypothesis]", *TEST_DEPS)
    session.run("coverage", "erase")
    session.run("python", "-bb", "-m", "coverage", "run", "-m", "pytest", *session.posargs)
    session.run("coverage", "report", "--include=src/aai_proto/*", "--fail-under=95")
    session.run("coverage", "report", "--include=replay/aai_replay/*", "--fail-under=0")


@nox.session
def lint(session: nox.Session) -> None:
    """Check style with ruff: lint rules and formatting."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check the packages, tests and examples with ``mypy --strict``."""
    session.install("-e", ".[trio,hypothesis]", "mypy>=1.10", "nox", *TEST_DEPS)
    session.run("mypy", "--strict")


@nox.session
def demo(session: nox.Session) -> None:
    """The main job: replay a shipped session and stream its audio through aai_proto.trio.

    Needs no network and no API key.
    """
    session.install(".[trio]")
    session.run("aai-replay", "demo", *session.posargs)
