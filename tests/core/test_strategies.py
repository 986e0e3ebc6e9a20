"""The public Hypothesis strategies generate what they promise."""

from __future__ import annotations

import pytest
from hypothesis import given

from aai_proto import (
    RemoteProtocolError,
    ServerEvent,
    dump_client_message,
    dump_server_message,
    parse_client_message,
    parse_server_message,
)
from aai_proto._messages import ClientMessage
from aai_proto.strategies import (
    client_message_texts,
    client_messages,
    malformed_client_message_texts,
    server_events,
    server_message_texts,
)


@given(server_events())
def test_server_events_round_trip(event: ServerEvent) -> None:
    assert parse_server_message(dump_server_message(event)) == event


@given(server_message_texts())
def test_server_message_texts_parse(text: str) -> None:
    parse_server_message(text)


@given(client_messages())
def test_client_messages_round_trip(message: ClientMessage) -> None:
    assert parse_client_message(dump_client_message(message)) == message


@given(client_message_texts())
def test_client_message_texts_parse(text: str) -> None:
    parse_client_message(text)


@given(malformed_client_message_texts())
def test_malformed_client_messages_are_refused(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_client_message(text)
