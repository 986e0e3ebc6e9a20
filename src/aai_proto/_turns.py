"""From ``Turn`` messages to what a person reads: interim and final transcripts."""

from __future__ import annotations

from typing import final

import attrs

from ._events import Turn

__all__ = ["TranscriptUpdate", "TurnTracker"]


@final
@attrs.frozen(kw_only=True)
class TranscriptUpdate:
    """The transcript of turn ``turn_order`` so far (``is_final`` False) or for good."""

    turn_order: int
    transcript: str
    is_final: bool
    turn: Turn
    """The message this update came from."""


@final
class TurnTracker:
    """Reduces ``Turn`` messages to transcript updates, each final reported once.

    A turn is *final* when ``end_of_turn`` is set and, if the session asked for
    ``format_turns``, ``turn_is_formatted`` too; before that its messages are
    *interim*. Messages with an empty transcript are skipped. A turn may end with
    one or two end-of-turn messages (unformatted, then formatted): whichever is
    final first is reported, and every later message of that turn is ignored.
    Set ``format_turns`` when an ``UpdateConfiguration`` changes it.
    """

    def __init__(self, *, format_turns: bool = False) -> None:
        self.format_turns = format_turns
        self._last_final = -1

    def update(self, turn: Turn) -> TranscriptUpdate | None:
        """Take the next ``Turn``; return the update it makes, or ``None`` if it makes none."""
        if turn.turn_order <= self._last_final or not turn.transcript:
            return None
        is_final = turn.end_of_turn and (not self.format_turns or turn.turn_is_formatted)
        if is_final:
            self._last_final = turn.turn_order
        return TranscriptUpdate(
            turn_order=turn.turn_order, transcript=turn.transcript, is_final=is_final, turn=turn
        )
