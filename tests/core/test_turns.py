"""TurnTracker: interim and final transcripts, each final once."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from aai_proto import TranscriptUpdate, Turn, TurnTracker
from aai_proto.strategies import turns


def turn(order: int, text: str, *, eot: bool = False, formatted: bool = False) -> Turn:
    return Turn(
        turn_order=order,
        turn_is_formatted=formatted,
        end_of_turn=eot,
        transcript=text,
        end_of_turn_confidence=0.5,
        words=(),
    )


def run(tracker: TurnTracker, messages: list[Turn]) -> list[tuple[int, str, bool]]:
    updates = [tracker.update(m) for m in messages]
    return [(u.turn_order, u.transcript, u.is_final) for u in updates if u is not None]


CLASSIC = [
    turn(0, ""),
    turn(0, "hi my"),
    turn(0, "hi my name is sonny", eot=True),
    turn(0, "Hi, my name is Sonny.", eot=True, formatted=True),
    turn(1, "bye", eot=True),
    turn(1, "Bye.", eot=True, formatted=True),
]


def test_classic_with_format_turns_reports_the_formatted_final() -> None:
    assert run(TurnTracker(format_turns=True), CLASSIC) == [
        (0, "hi my", False),
        (0, "hi my name is sonny", False),
        (0, "Hi, my name is Sonny.", True),
        (1, "bye", False),
        (1, "Bye.", True),
    ]


def test_without_format_turns_the_first_end_is_final_and_the_copy_ignored() -> None:
    assert run(TurnTracker(), CLASSIC) == [
        (0, "hi my", False),
        (0, "hi my name is sonny", True),
        (1, "bye", True),
    ]


def test_u3_shape() -> None:
    messages = [turn(0, "so the —"), turn(0, "So the thing works.", eot=True, formatted=True)]
    assert run(TurnTracker(format_turns=True), messages) == [
        (0, "so the —", False),
        (0, "So the thing works.", True),
    ]


def test_update_carries_the_turn() -> None:
    message = turn(3, "Yes.", eot=True, formatted=True)
    assert TurnTracker().update(message) == TranscriptUpdate(
        turn_order=3, transcript="Yes.", is_final=True, turn=message
    )


def test_format_turns_can_change_mid_session() -> None:
    tracker = TurnTracker()
    tracker.format_turns = True
    assert run(tracker, CLASSIC[2:4]) == [
        (0, "hi my name is sonny", False),
        (0, "Hi, my name is Sonny.", True),
    ]


@given(st.lists(turns(turn_order=st.integers(0, 4)), max_size=30), st.booleans())
def test_finals_are_once_and_last_and_nothing_is_empty(messages: list[Turn], fmt: bool) -> None:
    updates = run(TurnTracker(format_turns=fmt), messages)
    finals = [order for order, _, final in updates if final]
    assert len(finals) == len(set(finals))
    assert all(text for _, text, _ in updates)
    # Once a turn's final is out, nothing more is said of it or of any turn before it.
    last_final = -1
    for order, _, final in updates:
        assert order > last_final
        if final:
            last_final = order
