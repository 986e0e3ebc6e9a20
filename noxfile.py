"""Developer tasks for aai-proto.

``nox -s tests pure compiled lint typecheck`` is the full check CI runs; ``nox -s demo`` is the
main job; ``nox -l`` lists every session.
"""

from __future__ import annotations

import shutil
import sysconfig
from pathlib import Path

import nox

nox.options.sessions = ["tests", "pure", "compiled", "lint", "typecheck"]
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
    # tests/test_build_hook.py imports hatch_build.py, which imports hatchling.
    "hatchling>=1.21",
]


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite under ``python -bb`` with branch coverage.

    The coverage of ``src/aai_proto`` is reported and must be at least 95 %
    (``aai_replay`` is reported beside it). Extra arguments go to pytest,
    e.g. ``nox -s tests -- -k chunk``.
    """
    session.install("-e", ".[trio,hypothesis,fast]", *TEST_DEPS)
    session.run("coverage", "erase")
    session.run("python", "-bb", "-m", "coverage", "run", "-m", "pytest", *session.posargs)
    session.run("coverage", "report", "--include=src/aai_proto/*", "--fail-under=95")
    session.run("coverage", "report", "--include=replay/aai_replay/*", "--fail-under=0")


@nox.session
def pure(session: nox.Session) -> None:
    """Run the tests without the ``fast`` extra: the core as it is with only attrs and cattrs.

    The tests that need msgspec skip; everything else must pass on the pure-Python parser.
    """
    session.install("-e", ".[trio,hypothesis]", *TEST_DEPS)
    session.run("python", "-bb", "-m", "pytest", "-q", *session.posargs)


def _c_compiler_missing() -> str | None:
    """Why this interpreter cannot build a C extension here, or None if it can."""
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        return f"no C compiler ({cc!r} is not on PATH)"
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").is_file():
        return "no Python headers (Python.h)"
    return None


# Run by the sessions that install the compiled build: fail unless it is what imports.
_CHECK_COMPILED = (
    "import importlib.machinery as m, aai_proto._client as c; "
    "assert c.__file__.endswith(tuple(m.EXTENSION_SUFFIXES)), c.__file__; "
    "print('compiled:', c.__file__)"
)


def _install_compiled(session: nox.Session, *deps: str) -> None:
    # Not editable: an editable install runs the source tree, never compiled. pip
    # builds a project given by its path afresh every time, so this is the tree as it is.
    session.install(*deps, env={"AAI_PROTO_COMPILE": "1"})
    session.run("python", "-c", _CHECK_COMPILED)


@nox.session
def compiled(session: nox.Session) -> None:
    """Run the tests against the compiled build: ``aai_proto._client`` compiled by mypyc.

    Builds a wheel with ``AAI_PROTO_COMPILE=1`` (see ``hatch_build.py``) and installs
    it; needs a C compiler and the Python headers, and skips, saying so, without them.
    """
    missing = _c_compiler_missing()
    if missing:
        session.skip(f"the compiled build can't be built here: {missing}")
    _install_compiled(session, ".[trio,hypothesis,fast]", *TEST_DEPS)
    session.run("python", "-bb", "-m", "pytest", "-q", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Check style with ruff: lint rules and formatting."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check the packages, tests and examples with ``mypy --strict``."""
    session.install("-e", ".[trio,hypothesis,fast]", "mypy>=1.10", "nox", *TEST_DEPS)
    session.run("mypy", "--strict")


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmarks in ``bench/``: print one table and write ``bench/results.json``.

    Not part of the default sessions: these measure, they don't test (a missed target
    is reported, not a failure). Takes a few minutes. Extra arguments go to
    ``bench/run.py``, e.g. ``nox -s bench -- --only B1,B3`` or ``-- --quick``.
    Measures the compiled build (B1 measures the pure-Python source beside it), or
    the pure build alone where no C compiler is found.
    """
    missing = _c_compiler_missing()
    if missing:
        session.warn(f"benchmarking the pure-Python build only: {missing}")
        session.install(".[trio,fast]", "assemblyai>=0.40")
    else:
        _install_compiled(session, ".[trio,fast]", "assemblyai>=0.40")
    session.run("python", "bench/run.py", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """The main job: replay a shipped session and stream its audio through aai_proto.trio.

    Needs no network and no API key.
    """
    session.install(".[trio]")
    session.run("aai-replay", "demo", *session.posargs)
