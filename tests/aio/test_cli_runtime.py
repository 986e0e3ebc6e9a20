"""Which extra a missing module names, for ``aai-proto stream --runtime``'s one error line.

The command's runs on each runtime are in ``tests/trio/test_trio_programs.py`` (in
process) and ``tests/trio/test_cli_hardening.py`` (real processes, missing extras).
"""

from __future__ import annotations

import pytest

from aai_proto._adapter import cli


@pytest.mark.parametrize(
    ("exc", "extra"),
    [
        (ModuleNotFoundError("no trio", name="trio"), "trio"),
        (ModuleNotFoundError("no trio_websocket", name="trio_websocket"), "trio"),
        (ModuleNotFoundError("no websockets", name="websockets"), "asyncio"),
        # websockets older than 13 has no asyncio client: the extra's pin fixes it.
        (ModuleNotFoundError("old websockets", name="websockets.asyncio"), "asyncio"),
        (ModuleNotFoundError("something else", name="numpy"), None),
        (ModuleNotFoundError("no name"), None),
        (ImportError("cannot import name 'x'", name="websockets"), None),
        (ValueError("websockets"), None),
    ],
)
def test_missing_extra(exc: BaseException, extra: str | None) -> None:
    assert cli.missing_extra(exc) == extra
