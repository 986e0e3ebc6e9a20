"""StreamingError and the close codes."""

from __future__ import annotations

import pytest

from aai_proto import (
    CLOSE_CODES,
    NON_RETRYABLE_CLOSE_CODES,
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


# The documented table (the README's): every code aai-proto knows, and whether a
# session that failed with it may be tried again.
RETRYABLE_BY_CODE = {
    1000: False,  # no failure
    1001: True,
    1005: True,
    1006: True,  # a dropped connection
    1008: False,  # issue 15: credentials or account
    1011: True,
    1013: True,
    3005: True,
    3006: False,  # issue 15: the request or a client message
    3007: False,  # ours: the client's audio chunking or pace
    3008: True,  # a new session is the way on
    3009: True,
    4001: False,  # the Node SDK's set
    4002: False,  # the Node SDK's set
    4008: True,
    4029: False,  # ours: the legacy twin of 3007
    4031: True,
    4100: False,  # ours: the legacy twin of 3006
    4101: False,  # the Node SDK's set
    4102: True,
    4103: True,
    4900: False,  # the replay harness's refusals
    4901: False,
    4902: False,
}


def test_retryable_is_the_documented_table() -> None:
    assert set(RETRYABLE_BY_CODE) == set(CLOSE_CODES)
    assert {code: StreamingError(code).retryable for code in CLOSE_CODES} == RETRYABLE_BY_CODE
    # Codes aai-proto has no meaning for: the Node SDK's other non-retryable ones,
    # and the legacy "audio too short/long/small", are final; an unknown code is not.
    for code in (4000, 4003, 4032, 4033, 4034):
        assert not StreamingError(code).retryable, code
    for code in (4004, 4321, 1002, 3000):
        assert StreamingError(code).retryable, code
    final = {1000, 1008, 3006, 3007, 4000, 4001, 4002, 4003, 4029, 4032, 4033, 4034, 4100, 4101}
    assert set(NON_RETRYABLE_CLOSE_CODES) == final | {4900, 4901, 4902}


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
