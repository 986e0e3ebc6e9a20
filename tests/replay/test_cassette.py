"""Cassettes: where they live and what each record mode does, without sockets."""

from __future__ import annotations

from pathlib import Path

import pytest

from aai_replay._cassette import CassetteError, CassettePlan, cassette_path, plan_cassette

NODE = "tests/test_agent.py::test_reconnects"


def test_the_default_place_is_beside_the_test(tmp_path: Path) -> None:
    test_file = tmp_path / "tests" / "test_agent.py"
    assert cassette_path(test_file, "test_reconnects", tmp_path) == (
        tmp_path / "tests" / "cassettes" / "test_agent" / "test_reconnects.jsonl"
    )
    assert cassette_path(test_file, "test_x[u3/pro: 1]", tmp_path).name == "test_x[u3_pro__1].jsonl"


def test_a_given_path_is_taken_from_the_rootdir(tmp_path: Path) -> None:
    test_file = tmp_path / "tests" / "test_agent.py"
    assert cassette_path(test_file, "t", tmp_path, "fixtures/a.jsonl") == (
        tmp_path / "fixtures" / "a.jsonl"
    )
    assert cassette_path(test_file, "t", tmp_path, "/abs/a.jsonl") == Path("/abs/a.jsonl")


def cassette(tmp_path: Path, count: int) -> Path:
    path = tmp_path / "c.jsonl"
    for n in range(1, count + 1):
        (path if n == 1 else tmp_path / f"c-{n}.jsonl").write_text("{}\n")
    return path


@pytest.mark.parametrize(
    ("mode", "count", "replay", "record", "rewrite"),
    [
        ("none", 2, True, False, False),
        ("once", 0, False, True, False),
        ("once", 2, True, False, False),
        ("new_episodes", 0, False, True, False),
        ("new_episodes", 2, True, True, False),
        ("all", 0, False, True, True),
        ("all", 2, False, True, True),
    ],
)
def test_what_each_mode_does(
    tmp_path: Path, mode: str, count: int, replay: bool, record: bool, rewrite: bool
) -> None:
    path = cassette(tmp_path, count)
    plan = plan_cassette(path, mode, ci=False, explicit=False, node_id=NODE)
    files = (path, tmp_path / "c-2.jsonl")[:count]
    expected = CassettePlan(
        path=path,
        mode=mode,  # type: ignore[arg-type]
        replay=replay,
        record=record,
        rewrite=rewrite,
        files=files,
    )
    assert plan == expected


def test_none_without_a_cassette_says_how_to_record(tmp_path: Path) -> None:
    with pytest.raises(CassetteError) as raised:
        plan_cassette(tmp_path / "c.jsonl", "none", ci=False, explicit=False, node_id=NODE)
    assert str(raised.value) == (
        f"no cassette at {tmp_path / 'c.jsonl'}; record it with: "
        f"pytest --aai-record-mode=once '{NODE}'"
    )


@pytest.mark.parametrize("mode", ["once", "new_episodes", "all"])
def test_ci_refuses_to_record_unless_the_mode_is_explicit(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "c.jsonl"
    with pytest.raises(CassetteError, match="refused: CI is set"):
        plan_cassette(path, mode, ci=True, explicit=False, node_id=NODE)
    assert plan_cassette(path, mode, ci=True, explicit=True, node_id=NODE).record


def test_ci_replays_a_recorded_cassette_in_once_mode(tmp_path: Path) -> None:
    plan = plan_cassette(cassette(tmp_path, 1), "once", ci=True, explicit=False, node_id=NODE)
    assert (plan.replay, plan.record) == (True, False)


def test_an_unknown_mode_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="one of none, once, new_episodes, all, got 'some'"):
        plan_cassette(tmp_path / "c.jsonl", "some", ci=False, explicit=False, node_id=NODE)
