"""What a replay connection asks its I/O layer to do: send, close, or abort."""

from __future__ import annotations

from typing import Final, TypeAlias, final

import attrs

__all__ = ["MAX_REASON_BYTES", "Abort", "Action", "CloseConnection", "Send", "close_reason"]

MAX_REASON_BYTES: Final = 123
"""The longest close reason a WebSocket close frame can carry, in UTF-8 bytes."""


def close_reason(text: str) -> str:
    """``text`` cut to fit a close frame (123 UTF-8 bytes), never inside a character."""
    data = text.encode("utf-8")
    if len(data) <= MAX_REASON_BYTES:
        return text
    cut = data[: MAX_REASON_BYTES - 3].decode("utf-8", errors="ignore")
    return cut + "..."


@final
@attrs.frozen
class Send:
    """Send one frame: ``str`` as a text frame, ``bytes`` as a binary frame."""

    data: str | bytes


def _fit_reason(_: object, __: object, value: str) -> None:
    if len(value.encode("utf-8")) > MAX_REASON_BYTES:
        raise ValueError(f"a close reason holds at most {MAX_REASON_BYTES} UTF-8 bytes")


@final
@attrs.frozen
class CloseConnection:
    """Close the WebSocket with ``code`` and ``reason``, then stop."""

    code: int
    reason: str = attrs.field(default="", validator=_fit_reason)


@final
@attrs.frozen
class Abort:
    """Drop the connection without a close frame (the client sees code 1006), then stop."""


Action: TypeAlias = Send | CloseConnection | Abort
"""Anything a replay connection asks of its I/O layer."""
