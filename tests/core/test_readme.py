"""The README's code blocks marked to run do run, exactly as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"<!-- test: run this block -->\n```python\n(.*?)```", README, re.DOTALL)


def test_the_readme_has_runnable_blocks() -> None:
    assert BLOCKS


@pytest.mark.parametrize("code", BLOCKS)
def test_readme_block(code: str) -> None:
    exec(compile(code, "README.md", "exec"), {})
