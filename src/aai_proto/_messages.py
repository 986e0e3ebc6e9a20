"""Client messages: the text frames a client may send, as values a server can check."""

from __future__ import annotations

from typing import Any, ClassVar, final

import attrs

from ._params import (
    _ALIASES,
    _apply_aliases,
    _bool,
    _float01,
    _int,
    _param,
    _str,
    _str_list,
    _to_tuple,
)

__all__ = [
    "UPDATABLE_FIELDS",
    "ClientMessage",
    "ForceEndpoint",
    "KeepAlive",
    "Terminate",
    "UpdateConfiguration",
]


@final
@attrs.frozen
class Terminate:
    """End the session gracefully: the server finishes the last turn, then sends ``Termination``."""

    type: ClassVar[str] = "Terminate"


@final
@attrs.frozen
class ForceEndpoint:
    """End the current turn now; answered only by the turn's final ``Turn``."""

    type: ClassVar[str] = "ForceEndpoint"


@final
@attrs.frozen
class KeepAlive:
    """Reset the ``inactivity_timeout`` clock; not answered."""

    type: ClassVar[str] = "KeepAlive"


@final
@attrs.frozen(kw_only=True)
class UpdateConfiguration:
    """Change settings of a running session; not answered. ``None`` fields are not sent.

    Values are checked as :class:`~aai_proto.StreamingParams` checks them, raising
    :class:`~aai_proto.InvalidParameter`. The deprecated
    ``min_end_of_turn_silence_when_confident`` is stored as ``min_turn_silence``.
    """

    type: ClassVar[str] = "UpdateConfiguration"
    end_of_turn_confidence_threshold: float | None = _param("float", _float01)
    min_turn_silence: int | None = _param("int", _int(lo=0))
    max_turn_silence: int | None = _param("int", _int(lo=0))
    vad_threshold: float | None = _param("float", _float01)
    format_turns: bool | None = _param("bool", _bool)
    keyterms_prompt: tuple[str, ...] | None = attrs.field(
        default=None, converter=_to_tuple, validator=_str_list(100), metadata={"kind": "list"}
    )
    prompt: str | None = _param("str", _str(1750))
    agent_context: str | None = _param("str", _str(1750))
    filter_profanity: bool | None = _param("bool", _bool)
    interruption_delay: int | None = _param("int", _int(lo=0))
    turn_left_pad_ms: int | None = _param("int", _int(lo=0))
    language_codes: tuple[str, ...] | None = attrs.field(
        default=None, converter=_to_tuple, validator=_str_list(10), metadata={"kind": "list"}
    )
    session_heartbeat: bool | None = _param("bool", _bool)
    acknowledge_silence: bool | None = _param("bool", _bool)
    continuous_partials: bool | None = _param("bool", _bool)
    min_end_of_turn_silence_when_confident: int | None = _param(
        "int", _int(lo=0), repr=False, eq=False
    )

    def __attrs_post_init__(self) -> None:
        _apply_aliases(self)

    def fields(self) -> dict[str, Any]:
        """The settings this message changes, as wire names and JSON values."""
        return {
            a.name: list(v) if type(v) is tuple else v
            for a in attrs.fields(UpdateConfiguration)
            if (v := getattr(self, a.name)) is not None
        }


UPDATABLE_FIELDS = frozenset(
    a.name for a in attrs.fields(UpdateConfiguration) if a.name not in _ALIASES
)
"""The settings ``UpdateConfiguration`` may change."""

ClientMessage = Terminate | ForceEndpoint | KeepAlive | UpdateConfiguration
"""Any text message a client may send."""
