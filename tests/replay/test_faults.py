"""Fault injection without I/O: the fault stage and the faults' options."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aai_replay import Abort, CloseConnection, Faults, FaultStage, Send

ERROR_REASON = "See Error message for details"


def stage_with(faults: Faults, n: int = 4, now: float = 0.0) -> FaultStage:
    stage = FaultStage(faults)
    for i in range(n):
        stage.push(Send(f"m{i}"), now)
    return stage


def test_no_faults_pass_everything_through_at_once() -> None:
    stage = stage_with(Faults())
    stage.push(CloseConnection(1000, "Session Ended"), 0.0)
    assert stage.pop(0.0) == [
        Send("m0"),
        Send("m1"),
        Send("m2"),
        Send("m3"),
        CloseConnection(1000, "Session Ended"),
    ]
    assert stage.finished
    assert stage.messages_sent == 4
    stage.push(Send("late"), 1.0)
    assert stage.pop(1.0) == []
    assert stage.next_deadline() is None
    assert not Faults().active


def test_drop_after_messages() -> None:
    stage = stage_with(Faults(drop_after_messages=2))
    assert stage.pop(0.0) == [Send("m0"), Send("m1"), Abort()]
    assert stage.finished
    assert stage.pop(5.0) == []


def test_drop_after_zero_messages_drops_at_once() -> None:
    stage = FaultStage(Faults(drop_after_messages=0))
    assert stage.pop(0.0) == [Abort()]


def test_drop_after_seconds() -> None:
    stage = stage_with(Faults(drop_after_seconds=1.5))
    assert stage.next_deadline() == 0.0
    assert len(stage.pop(0.0)) == 4
    assert stage.next_deadline() == 1.5
    assert stage.pop(1.4) == []
    assert stage.pop(1.5) == [Abort()]
    assert stage.next_deadline() is None


def test_a_drop_due_before_a_delayed_message_wins() -> None:
    stage = stage_with(Faults(drop_after_seconds=1.0, delay=2.0), n=1)
    assert stage.next_deadline() == 1.0
    assert stage.pop(3.0) == [Abort()]


def test_a_message_due_before_the_drop_goes_first() -> None:
    stage = stage_with(Faults(drop_after_seconds=1.0, delay=0.5), n=1)
    assert stage.pop(3.0) == [Send("m0"), Abort()]


def test_delay_holds_every_action_back_in_order() -> None:
    stage = FaultStage(Faults(delay=0.25))
    stage.push(Send("a"), 0.0)
    stage.push(Send("b"), 0.1)
    stage.push(CloseConnection(1000, ""), 0.1)
    assert stage.pop(0.2) == []
    assert stage.next_deadline() == 0.25
    assert stage.pop(0.25) == [Send("a")]
    assert stage.next_deadline() == pytest.approx(0.35)
    assert stage.pop(0.4) == [Send("b"), CloseConnection(1000, "")]


def test_inject_error_after_messages() -> None:
    stage = stage_with(Faults(error_code=3005, error_after=1))
    assert stage.pop(0.0) == [
        Send("m0"),
        Send('{"type":"Error","error_code":3005,"error":"Injected error: server error"}'),
        CloseConnection(3005, ERROR_REASON),
    ]
    assert stage.finished


def test_inject_error_with_text_before_begin() -> None:
    stage = stage_with(Faults(error_code=4001, error_after=0, error_text="Not Authorized ü"))
    assert stage.pop(0.0) == [
        Send('{"type":"Error","error_code":4001,"error":"Not Authorized ü"}'),
        CloseConnection(4001, ERROR_REASON),
    ]


def test_an_unknown_code_gets_a_generic_text() -> None:
    assert Faults(error_code=3999).error_message() == (
        '{"type":"Error","error_code":3999,"error":"Injected error: unknown close code 3999"}'
    )
    assert Faults().error_message() is None


def test_send_raw_after_messages() -> None:
    stage = stage_with(Faults(raw="{not json", raw_after=2), n=3)
    assert stage.pop(0.0) == [Send("m0"), Send("m1"), Send("{not json"), Send("m2")]
    assert stage.messages_sent == 3
    stage = stage_with(Faults(raw=b"\x00\x01", raw_after=0), n=1)
    assert stage.pop(0.0) == [Send(b"\x00\x01"), Send("m0")]


def test_faults_on_the_same_count_come_raw_then_error() -> None:
    faults = Faults(raw="x", raw_after=1, error_code=3005, error_after=1, drop_after_messages=1)
    stage = stage_with(faults)
    assert stage.pop(0.0) == [
        Send("m0"),
        Send("x"),
        Send('{"type":"Error","error_code":3005,"error":"Injected error: server error"}'),
        CloseConnection(3005, ERROR_REASON),
    ]


def test_faults_that_never_come_due_change_nothing() -> None:
    stage = stage_with(Faults(error_code=3005, error_after=10, raw="x", raw_after=10), n=2)
    assert stage.pop(0.0) == [Send("m0"), Send("m1")]
    assert Faults(error_code=3005).active


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"drop_after_messages": -1}, "drop_after_messages must be a whole number >= 0"),
        ({"drop_after_messages": 1.0}, "drop_after_messages must be a whole number >= 0"),
        ({"error_after": True}, "error_after must be a whole number >= 0"),
        ({"drop_after_seconds": -0.5}, "drop_after_seconds must be a number of seconds >= 0"),
        ({"delay": float("nan")}, "delay must be a number of seconds >= 0"),
        ({"delay": "1"}, "delay must be a number of seconds >= 0"),
        ({"error_code": 1006}, "error_code must be a close code a server can send"),
        ({"error_code": 5000}, "error_code must be a close code a server can send"),
        ({"error_code": 2000}, "error_code must be a close code a server can send"),
        ({"error_text": 5}, "error_text must be a string"),
        ({"raw": 5}, r"raw must be str \(a text frame\) or bytes \(a binary frame\)"),
    ],
)
def test_bad_fault_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Faults(**options)


@pytest.mark.parametrize("code", [1000, 1003, 1007, 1011, 1014, 3000, 3006, 4999])
def test_every_sendable_close_code_can_be_injected(code: int) -> None:
    assert Faults(error_code=code).error_code == code


@given(
    st.lists(st.floats(0, 5), max_size=10),
    st.builds(
        Faults,
        drop_after_messages=st.none() | st.integers(0, 12),
        drop_after_seconds=st.none() | st.floats(0, 10),
        delay=st.floats(0, 2),
        error_code=st.none() | st.integers(3000, 4999),
        error_after=st.integers(0, 12),
        raw=st.none() | st.text(alphabet="xy{", max_size=3),
        raw_after=st.integers(0, 12),
    ),
)
def test_the_stage_keeps_order_and_ends_once(pushes: list[float], faults: Faults) -> None:
    stage = FaultStage(faults)
    now = 0.0
    out: list[Any] = []
    for i, step in enumerate(pushes):
        now += step
        stage.push(Send(f"m{i}"), now)
        out += stage.pop(now)
    out += stage.pop(now + 100)
    originals = [a.data for a in out if isinstance(a, Send) and str(a.data).startswith("m")]
    assert originals == [f"m{i}" for i in range(len(originals))]
    ends = [a for a in out if isinstance(a, Abort | CloseConnection)]
    assert len(ends) <= 1
    if ends:
        assert out[-1] is ends[0]
        assert stage.finished
    else:
        assert len(originals) == len(pushes)


def test_pop_timed_gives_each_action_the_time_it_fell_due() -> None:
    stage = FaultStage(Faults(delay=0.25, raw="raw", raw_after=1))
    stage.push(Send("a"), 0.0)
    stage.push(Send("b"), 0.1)
    assert stage.pop_timed(0.2) == []
    assert stage.pop_timed(0.5) == [
        (0.25, Send("a")),
        (0.5, Send("raw")),  # an injected frame is due when it is injected
        (pytest.approx(0.35), Send("b")),
    ]
    stage = FaultStage(Faults(drop_after_seconds=1.0))
    stage.push(Send("a"), 2.0)
    assert stage.pop_timed(3.0) == [(1.0, Abort())]
