"""The official SDK (assemblyai) as the tests drive it: its parameters, events and warnings."""

from __future__ import annotations

from typing import Any

import pytest
from assemblyai.streaming.v3 import StreamingEvents, StreamingParameters
from assemblyai.streaming.v3._base import _BaseStreamingClient

from aai_replay import RecordedSession, ServerMessage

# The SDK (1.8.2) uses websockets APIs that websockets 17 deprecates -- its sync
# connect() without a context manager, ConnectionClosed.code and .reason -- from
# its own threads; with warnings as errors those threads would die.
SDK_WARNINGS = [
    pytest.mark.filterwarnings(
        r"ignore:connect\(\) must be used as a context manager:DeprecationWarning"
    ),
    pytest.mark.filterwarnings(
        r"ignore:ConnectionClosed\.(code|reason) is deprecated:DeprecationWarning"
    ),
]

Received = list[tuple[str, Any]]
"""What the SDK reported: (model class name, model), in order."""


def sdk_parameters(session: RecordedSession) -> StreamingParameters:
    """The recorded request's parameters, as an SDK user passes them."""
    params = session.params
    fields: dict[str, Any] = {}
    for name in (
        "sample_rate",
        "encoding",
        "speech_model",
        "format_turns",
        "speaker_labels",
        "language_detection",
        "session_heartbeat",
        "inactivity_timeout",
    ):
        value = getattr(params, name)
        if value is not None:
            fields[name] = value
    return StreamingParameters(**fields)


def listen(client: Any) -> tuple[Received, list[Any]]:
    """Record every event the SDK client reports, and its errors apart."""
    received: Received = []
    errors: list[Any] = []
    for event in StreamingEvents:
        if event is StreamingEvents.Error:
            client.on(event, lambda _client, error: errors.append(error))
        else:
            client.on(
                event, lambda _client, message: received.append((type(message).__name__, message))
            )
    return received, errors


def expected_events(session: RecordedSession) -> Received:
    """The recorded server messages as the SDK parses them, with the SDK's event names."""
    out: Received = []
    for entry in session.entries:
        if isinstance(entry, ServerMessage):
            model = _BaseStreamingClient._parse_message(dict(entry.message))
            assert model is not None
            out.append((type(model).__name__, model))
    return out
