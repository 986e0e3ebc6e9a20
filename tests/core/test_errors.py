"""StreamingError and the close codes."""

from __future__ import annotations

import pytest

from aai_proto import (
    CLOSE_CODES,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    StreamingError,
    close_code_meaning,
)


def test_known_and_unknown_codes() -> None:
    assert close_code_meaning(3008) == "session expired (maximum duration reached)"
    assert close_code_meaning(4321, "custom reason") == "custom reason"
    assert close_code_meaning(4321) == "unknown close code 4321"
    assert set(CLOSE_CODES) >= {
        1000,
        1008,
        1011,
        3005,
        3006,
        3007,
        3008,
        3009,
        4001,
        4102,
        4103,
        1013,
    }


def test_streaming_error_text() -> None:
    error = StreamingError(3007, "See Error message for details", "Input duration violation: 20 ms")
    assert str(error) == (
        "3007 audio chunk duration violation, or audio sent too fast: "
        "Input duration violation: 20 ms"
    )
    assert repr(error) == (
        "StreamingError(code=3007, reason='See Error message for details', "
        "message='Input duration violation: 20 ms')"
    )
    assert str(StreamingError(1006)) == "1006 connection lost without a close frame"
    assert str(StreamingError(4999, "went away")) == "4999 went away"
    assert (
        str(StreamingError(1011, "overloaded"))
        == "1011 internal server error (retryable): overloaded"
    )
    assert StreamingError(1011).retryable
    assert not StreamingError(3007).retryable


def test_equality_and_hash() -> None:
    assert StreamingError(3005, "r", "m") == StreamingError(3005, "r", "m")
    assert StreamingError(3005, "r", "m") != StreamingError(3005, "r", None)
    assert len({StreamingError(3005, "r", "m"), StreamingError(3005, "r", "m")}) == 1
    assert StreamingError(3005) != 3005


def test_hierarchy() -> None:
    assert issubclass(LocalProtocolError, ProtocolError)
    assert issubclass(RemoteProtocolError, ProtocolError)
    with pytest.raises(ProtocolError):
        raise RemoteProtocolError("x")
