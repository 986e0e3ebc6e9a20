"""The optional compiled build: ``AAI_PROTO_COMPILE=1`` compiles ``aai_proto._client`` with mypyc.

The core is pure Python and stays so by default. For callers who hand the client
many tiny writes (10-20 ms of audio at a time), most of the cost of
``Client.send_audio`` + ``data_to_send`` is the interpreter's call overhead, which no
Python code can shed; mypyc compiles the same source, unchanged, into a C
extension that the import system prefers to the ``.py`` beside it. The test suite
runs against both builds (``nox -s compiled``).

Building it needs a C compiler and the Python headers; mypy, setuptools and the
core's dependencies are installed into the build environment only when asked for.
Editable installs are never compiled: they run the source tree.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

ENV_VAR = "AAI_PROTO_COMPILE"
"""Set to ``1`` to compile; unset, empty or ``0`` for the pure-Python wheel."""
COMPILED = ["src/aai_proto/_client.py"]
"""The modules mypyc compiles, relative to the project root."""
BUILD_DEPENDENCIES = ["mypy>=1.10", "setuptools>=68"]
# Type-checks only what it compiles, against the installed packages: quietly past
# the imports it cannot see (msgspec, which the accelerator imports, is optional).
_MYPY_ARGS = ["--config-file=", "--follow-imports=silent"]


def compile_wanted() -> bool:
    """Whether ``AAI_PROTO_COMPILE`` asks for the compiled build (``ValueError`` if unclear)."""
    value = os.environ.get(ENV_VAR, "").strip()
    if value not in ("", "0", "1"):
        raise ValueError(f"{ENV_VAR} must be 1 (compile) or 0 (don't), not {value!r}")
    return value == "1"


def compile_modules(root: Path, work: Path) -> dict[str, str]:
    """Compile :data:`COMPILED` in ``work``; return {built file: its path in the wheel}."""
    # Imported here: they are in the build environment only for a compiled build.
    from mypyc.build import mypycify
    from setuptools import Distribution

    sources = [str(root / path) for path in COMPILED]
    extensions = mypycify([*_MYPY_ARGS, *sources], target_dir=str(work / "c"))
    dist = Distribution({"name": "aai-proto-compiled", "ext_modules": extensions})
    build_ext: Any = dist.get_command_obj("build_ext")
    build_ext.build_lib = str(work / "lib")
    build_ext.build_temp = str(work / "temp")
    build_ext.inplace = False
    build_ext.ensure_finalized()
    build_ext.run()
    lib = work / "lib"
    built: dict[str, str] = {}
    for output in build_ext.get_outputs():
        path = Path(output).resolve()
        built[str(path)] = path.relative_to(lib.resolve()).as_posix()
    return built


class CompileHook(BuildHookInterface):  # type: ignore[type-arg]
    """Hatchling's hook for the wheel: compiles when ``AAI_PROTO_COMPILE=1``."""

    PLUGIN_NAME = "custom"

    def dependencies(self) -> list[str]:
        if not compile_wanted():
            return []
        return [*BUILD_DEPENDENCIES, *self.metadata.core.dependencies]

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        self._work: Path | None = None
        if self.target_name != "wheel" or version != "standard" or not compile_wanted():
            return
        self._work = Path(tempfile.mkdtemp(prefix="aai-proto-mypyc-"))
        build_data["force_include"].update(compile_modules(Path(self.root), self._work))
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if self._work is not None:
            shutil.rmtree(self._work, ignore_errors=True)
