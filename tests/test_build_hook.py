"""The switch of the optional compiled build (``hatch_build.py``).

The build itself is tested end to end by ``nox -s compiled``: it builds the wheel
with ``AAI_PROTO_COMPILE=1``, checks that the compiled module is what imports, and
runs the whole suite against it.
"""

from __future__ import annotations

import hatch_build
import pytest


@pytest.mark.parametrize(
    ("value", "wanted"), [(None, False), ("", False), ("0", False), ("1", True), (" 1 ", True)]
)
def test_the_switch(monkeypatch: pytest.MonkeyPatch, value: str | None, wanted: bool) -> None:
    if value is None:
        monkeypatch.delenv(hatch_build.ENV_VAR, raising=False)
    else:
        monkeypatch.setenv(hatch_build.ENV_VAR, value)
    assert hatch_build.compile_wanted() is wanted


@pytest.mark.parametrize("value", ["yes", "true", "2"])
def test_an_unclear_switch_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(hatch_build.ENV_VAR, value)
    with pytest.raises(
        ValueError, match=f"AAI_PROTO_COMPILE must be 1 .compile. or 0 .don't., not '{value}'"
    ):
        hatch_build.compile_wanted()
