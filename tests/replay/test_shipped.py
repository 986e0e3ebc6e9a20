"""The shipped sessions, found by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from aai_replay import load_session
from aai_replay._shipped import resolve_session, shipped_sessions

ROOT = Path(__file__).resolve().parents[2]


def test_every_shipped_session_is_listed_with_its_description() -> None:
    listed = shipped_sessions()
    files = sorted((ROOT / "fixtures" / "sessions").glob("*.jsonl"))
    assert [s.name for s in listed] == [f.stem for f in files]
    for session in listed:
        assert session.path.samefile(ROOT / "fixtures" / "sessions" / f"{session.name}.jsonl")
        assert session.description == load_session(session.path).header.description


@pytest.mark.parametrize("spec", ["u3-pro", "u3-pro.jsonl"])
def test_a_name_finds_the_shipped_file(spec: str) -> None:
    assert resolve_session(spec).samefile(ROOT / "fixtures" / "sessions" / "u3-pro.jsonl")


def test_an_existing_path_wins_over_a_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "u3-pro").write_text("mine")
    assert resolve_session("u3-pro") == Path("u3-pro")


def test_neither_a_file_nor_a_name() -> None:
    with pytest.raises(FileNotFoundError, match="no session file 'nope', and no shipped") as e:
        resolve_session("nope")
    assert "u3-pro" in str(e.value)  # it names what is shipped


@pytest.mark.parametrize("spec", ["dir/u3-pro", "nope.jsonl"])
def test_a_path_is_left_for_the_loader_to_find_missing(spec: str) -> None:
    assert resolve_session(spec) == Path(spec)
