"""Client messages: the text frames a client may send, as values a server can check.

Strategy: the settings ``UpdateConfiguration`` may change are declared once, on
``StreamingParams`` (``updatable=True``), with their validators and converters.
``UpdateConfiguration`` names them again only so that type checkers see its
keyword arguments (and to fix their order on the wire); a field transformer gives
each the checks of the ``StreamingParams`` field of that name, and refuses, at
import, a name or type the two classes do not share.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final, final

import attrs

from ._params import _ALIASES, StreamingParams, _apply_aliases, _to_tuple

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


# The updatable settings, deprecated names included, as StreamingParams declares them.
_SETTINGS: Final = {
    a.name: a for a in attrs.fields(StreamingParams) if a.metadata.get("updatable", False)
}


def _checked_as_params(cls: type, fields: list[attrs.Attribute[Any]]) -> list[attrs.Attribute[Any]]:
    """Give each field of ``cls`` the checks of the ``StreamingParams`` setting it names."""
    names = [a.name for a in fields]
    if set(names) != set(_SETTINGS):
        missing = sorted(set(_SETTINGS) - set(names))
        unknown = sorted(set(names) - set(_SETTINGS))
        raise TypeError(
            f"{cls.__name__} must have the updatable settings of StreamingParams; "
            f"missing {missing}, not updatable {unknown}"
        )
    out = []
    for a in fields:
        setting = _SETTINGS[a.name]
        if a.type != setting.type or a.converter not in (None, setting.converter):
            raise TypeError(
                f"{cls.__name__}.{a.name} is {a.type} (converter {a.converter!r}), "
                f"StreamingParams.{a.name} is {setting.type} (converter {setting.converter!r})"
            )
        out.append(
            a.evolve(
                validator=setting.validator,
                converter=setting.converter,
                metadata=setting.metadata,
                repr=setting.repr,
                eq=setting.eq,
                hash=setting.hash,
            )
        )
    return out


@final
@attrs.frozen(kw_only=True, field_transformer=_checked_as_params)
class UpdateConfiguration:
    """Change settings of a running session; not answered. ``None`` fields are not sent.

    Values are checked as :class:`~aai_proto.StreamingParams` checks them, raising
    :class:`~aai_proto.InvalidParameter`. The deprecated
    ``min_end_of_turn_silence_when_confident`` is stored as ``min_turn_silence``.
    """

    type: ClassVar[str] = "UpdateConfiguration"
    # Names and types only (checked against StreamingParams by _checked_as_params), in
    # wire order. The list converter is repeated so that type checkers accept a list.
    end_of_turn_confidence_threshold: float | None = None
    min_turn_silence: int | None = None
    max_turn_silence: int | None = None
    vad_threshold: float | None = None
    format_turns: bool | None = None
    keyterms_prompt: tuple[str, ...] | None = attrs.field(default=None, converter=_to_tuple)
    prompt: str | None = None
    agent_context: str | None = None
    filter_profanity: bool | None = None
    interruption_delay: int | None = None
    turn_left_pad_ms: int | None = None
    language_codes: tuple[str, ...] | None = attrs.field(default=None, converter=_to_tuple)
    session_heartbeat: bool | None = None
    acknowledge_silence: bool | None = None
    continuous_partials: bool | None = None
    min_end_of_turn_silence_when_confident: int | None = None

    def __attrs_post_init__(self) -> None:
        _apply_aliases(self)

    def fields(self) -> dict[str, Any]:
        """The settings this message changes, as wire names and JSON values."""
        return {
            a.name: list(v) if type(v) is tuple else v
            for a in attrs.fields(UpdateConfiguration)
            if (v := getattr(self, a.name)) is not None
        }


UPDATABLE_FIELDS = frozenset(name for name in _SETTINGS if name not in _ALIASES)
"""The settings ``UpdateConfiguration`` may change (``updatable`` in ``StreamingParams``)."""

ClientMessage = Terminate | ForceEndpoint | KeepAlive | UpdateConfiguration
"""Any text message a client may send."""
