"""The parse path's cost: linear in the text, and no pass over it that can be skipped.

With the accelerator, what it would leave to the reference anyway is left without
decoding the text first; a long message of few containers (long strings, where the
standard ``json`` reads faster than ``msgspec``) goes to the reference directly. The
events are the reference's in every case (the differential tests check that); these
tests check which path runs, and a coarse bound on the time per MiB.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from aai_proto import Begin, ServerError, Turn, UnknownMessage, parse_server_message
from aai_proto._wire import MAX_MESSAGE_BYTES, MAX_NESTING_DEPTH, _parse_reference

accel = pytest.importorskip("aai_proto._accel")

TURN_HEAD = '{"turn_order":1,"turn_is_formatted":false,"end_of_turn":false,"transcript":"'
TURN_TAIL = '","end_of_turn_confidence":0.5,"words":[],"type":"Turn"}'


def _fill(head: str, unit: str, tail: str, size: int) -> str:
    return head + unit * ((size - len(head) - len(tail)) // len(unit)) + tail


class _NoDecode:
    """Stands for a msgspec decoder that must not be called."""

    def decode(self, data: bytes) -> Any:
        raise AssertionError("the text was decoded, to be left to the reference")


@pytest.fixture
def no_head_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accel, "_HEAD", _NoDecode())


@pytest.mark.usefixtures("no_head_decode")
@pytest.mark.parametrize(
    ("text", "event"),
    [
        (
            '{"x":"\\u00e9","type":"Nope"}',
            UnknownMessage(type="Nope", data={"x": "é", "type": "Nope"}),
        ),
        ('{"x":1, "type": "Nope"}', UnknownMessage(type="Nope", data={"x": 1, "type": "Nope"})),
        ('{"error":"\\u00e9"}', ServerError(error="é")),
        ('{"error_code":1,"error":"e"}', ServerError(error_code=1, error="e")),
    ],
)
def test_what_the_accelerator_declines_anyway_is_not_decoded_first(text: str, event: Any) -> None:
    assert accel.parse_server_message(text) is None
    assert parse_server_message(text) == event


@pytest.mark.usefixtures("no_head_decode")
@pytest.mark.parametrize(
    "text",
    [
        '{"type":"Begin","id":"a","expires_at":1}',
        '{"type": "Begin", "id": "a", "expires_at": 1}',
        '{"type":"Begin","id":"a","expires_at":1,"x":[1,{"y":"z"}]}',
    ],
)
def test_type_first_is_read_from_the_head_when_nothing_else_can_be_the_type(text: str) -> None:
    assert accel.parse_server_message(text) == Begin(id="a", expires_at=1)


@pytest.mark.parametrize(
    "text",
    [
        # Another "type" key (the last wins), or one spelled with an escape: the head
        # can't say the type; the whole text is decoded for it.
        '{"type":"Begin","id":"a","expires_at":1,"type":"Nope"}',
        '{"type":"Begin","id":"a","expires_at":1,"\\u0074ype":"Nope"}',
        '{"type":"Begin","id":"a","expires_at":1,"x":"type"}',
    ],
)
def test_the_head_is_not_trusted_when_another_type_may_follow(text: str) -> None:
    assert accel.parse_server_message(text) == _outcome(_parse_reference, text)
    assert parse_server_message(text) == _parse_reference(text)


def _outcome(parse: Callable[[str], Any], text: str) -> Any:
    event = parse(text)
    return event if isinstance(event, Begin) else None


def test_a_long_message_of_few_containers_goes_to_the_reference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = _fill(TURN_HEAD, "\\u00e9", TURN_TAIL, 256 * 1024)
    monkeypatch.setattr(accel, "decode", lambda *_: pytest.fail("decoded by msgspec"))
    event = parse_server_message(text)
    assert isinstance(event, Turn)
    assert event.transcript == "é" * ((len(text) - len(TURN_HEAD) - len(TURN_TAIL)) // 6)


def test_a_long_message_of_many_containers_is_the_accelerators() -> None:
    word = '{"start":1,"end":2,"text":"\\u00e9","confidence":0.5,"word_is_final":true},'
    text = _fill(TURN_HEAD[:-1] + '"x","end_of_turn_confidence":0.5,"words":[', word, "", 64 * 1024)
    text = text[:-1] + '],"type":"Turn"}'
    data = text.encode()
    assert accel.decode(data, accel.shapes(data)) == _parse_reference(text)


def test_the_accelerator_alone_keeps_the_default_limits() -> None:
    # Found by test_edge_values_agree: a Begin whose first "type" nests 80 levels.
    deep = '{"type":' + "[" * 80 + "]" * 80 + ',"id":"a","expires_at":0,"type":"Begin"}'
    assert accel.parse_server_message(deep) is None
    big = _fill('{"x":"', "a", '","id":"a","expires_at":0,"type":"Begin"}', MAX_MESSAGE_BYTES + 1)
    assert accel.parse_server_message(big) is None
    within = '{"x":' + "[" * 63 + "]" * 63 + ',"id":"a","expires_at":0,"type":"Begin"}'
    assert accel.parse_server_message(within) == Begin(id="a", expires_at=0)
    assert MAX_NESTING_DEPTH == 64


def _ms_per_mib(text: str) -> float:
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        parse_server_message(text)
        best = min(best, time.perf_counter() - t0)
    return best * 1000 * 1048576 / len(text.encode())


@pytest.mark.parametrize("unit", ["\\u00e9", "a \\u00e9 ", "caf\\u00e9", "plain english text "])
def test_escaped_text_parses_in_linear_time(unit: str) -> None:
    # A coarse bound, far above what it takes (about 3 ms per MiB), far below the
    # 40 ms per MiB once reported: a quadratic path would show at 1 MiB.
    small = _ms_per_mib(_fill(TURN_HEAD, unit, TURN_TAIL, 64 * 1024))
    large = _ms_per_mib(_fill(TURN_HEAD, unit, TURN_TAIL, MAX_MESSAGE_BYTES - 64))
    assert large < 25
    assert large < 4 * small + 5
