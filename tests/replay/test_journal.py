"""The journal: what each connection carried, lifecycle violations, and `serve --journal`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import trio
import trio.testing

import aai_proto.trio
from aai_proto import ForceEndpoint, StreamingParams, Terminate, UpdateConfiguration
from aai_replay import (
    AudioReceived,
    ClientMessageRecord,
    CloseConnection,
    CloseRecord,
    ConnectionRecord,
    Departure,
    RecordedSession,
    ReplayConnection,
    ReplayOptions,
    ReplayPlan,
    Request,
    Send,
    ServerMessageRecord,
    ViolationRecord,
    open_replay_server,
)
from tests._websocket import connect as connect_url

QUERY = "sample_rate=16000&encoding=pcm_s16le"
TARGET = "/v3/ws?" + QUERY
FRAME = b"\0" * 1600  # 50 ms of 16 kHz pcm_s16le
TERMINATE = '{"type":"Terminate"}'
BEGIN = '{"type":"Begin","id":"live","expires_at":10800}'
TERMINATION = '{"type":"Termination","audio_duration_seconds":0,"session_duration_seconds":0}'


def connect(session: RecordedSession, target: str = TARGET, **options: Any) -> ReplayConnection:
    return ReplayConnection(
        ReplayPlan(session), ReplayOptions(**options), target=target, session_id="live"
    )


def play_basic(conn: ReplayConnection) -> None:
    """The basic session's client: four frames, Terminate (the server's answer not yet sent)."""
    conn.data_to_send(0.0)
    for i in range(4):
        conn.receive_message(FRAME, 0.05 * (i + 1))
    conn.receive_message(TERMINATE, 0.3)


# -- the journal of one connection, without I/O ----------------------------------------


def test_the_journal_holds_what_the_connection_carried(basic_session: RecordedSession) -> None:
    conn = connect(basic_session, target=TARGET + "&format_turns=true&token=SECRET-TOKEN")
    conn.data_to_send(0.0)
    conn.receive_message(FRAME, 0.05)
    conn.receive_message(FRAME, 0.10)
    conn.receive_message('{"type":"UpdateConfiguration","max_turn_silence":500}', 0.11)
    conn.data_to_send(0.12)
    conn.receive_message(FRAME, 0.15)
    conn.receive_message(FRAME, 0.2)
    conn.receive_message(TERMINATE, 0.3)
    conn.data_to_send(0.4)
    record = conn.record()
    assert record == ConnectionRecord(
        connection=1,
        request=Request(path="/v3/ws", query={**dict(_pairs(QUERY)), "format_turns": "true"}),
        params=StreamingParams(sample_rate=16000, encoding="pcm_s16le", format_turns=True),
        audio=AudioReceived(frames=4, bytes=6400, ms=200.0),
        client_messages=(
            ClientMessageRecord(t=0.11, message=UpdateConfiguration(max_turn_silence=500)),
            ClientMessageRecord(t=0.3, message=Terminate()),
        ),
        server_messages=(
            ServerMessageRecord(t=0.0, data=BEGIN),
            ServerMessageRecord(t=0.12, data=_turn(0, "hello")),
            ServerMessageRecord(t=0.4, data=_turn(0, "hello world", end=True)),
            ServerMessageRecord(t=0.4, data=TERMINATION),
        ),
        close=CloseRecord(code=1000, reason="Session Ended", by="server"),
        # The recording was made without format_turns: a lenient replay notes it.
        departures=(Departure(t=0.0, expected="format_turns=(not sent)", got="format_turns=true"),),
    )
    assert "SECRET" not in repr(record) + json.dumps(record.to_json())
    assert record.problems() == []  # a lenient departure is only journaled


def _pairs(query: str) -> list[tuple[str, str]]:
    return [tuple(p.split("=")) for p in query.split("&")]  # type: ignore[misc]


def _turn(order: int, text: str, *, end: bool = False) -> str:
    return json.dumps(
        {
            "turn_order": order,
            "turn_is_formatted": False,
            "end_of_turn": end,
            "transcript": text,
            "end_of_turn_confidence": 0.9 if end else 0.1,
            "words": [],
            "type": "Turn",
        },
        separators=(",", ":"),
    )


def test_the_journal_as_json(basic_session: RecordedSession) -> None:
    conn = connect(basic_session, target=TARGET + "&keyterms_prompt=%5B%22a%22%5D")
    conn.data_to_send(0.0)
    conn.receive_message('{"type":"ForceEndpoint"}', 0.01)
    conn.receive_message(b"\xff", 0.02)
    conn.data_to_send(0.02)
    conn.client_closed(4001, "bye")
    assert conn.record().to_json() == {
        "connection": 1,
        "request": {
            "path": "/v3/ws",
            "query": {"sample_rate": "16000", "encoding": "pcm_s16le", "keyterms_prompt": '["a"]'},
        },
        "params": {"sample_rate": 16000, "encoding": "pcm_s16le", "keyterms_prompt": ["a"]},
        "audio": {"frames": 1, "bytes": 1, "ms": 0.03125},
        "client_messages": [{"t": 0.01, "type": "ForceEndpoint"}],
        "server_messages": [
            {"t": 0.0, "message": {"type": "Begin", "id": "live", "expires_at": 10800}},
            # An unrecorded ForceEndpoint releases the next end of turn (and what's before it).
            {"t": 0.02, "message": json.loads(_turn(0, "hello"))},
            {"t": 0.02, "message": json.loads(_turn(0, "hello world", end=True))},
        ],
        "close": {"code": 4001, "reason": "bye", "by": "client"},
        "violations": [],
        "departures": [
            {"t": 0.01, "expected": "Terminate", "got": "ForceEndpoint"},
            {"t": 0.0, "expected": "keyterms_prompt=(not sent)", "got": 'keyterms_prompt=["a"]'},
        ][::-1],
    }


def test_raw_and_binary_server_frames_are_journaled_as_such(
    basic_session: RecordedSession,
) -> None:
    from aai_replay import Faults

    conn = connect(basic_session, faults=Faults(raw=b"\x01\x02", raw_after=0))
    conn.data_to_send(0.0)
    conn2 = connect(basic_session, faults=Faults(raw="not json", raw_after=1))
    conn2.data_to_send(0.0)
    assert conn.record().to_json()["server_messages"][0] == {"t": 0.0, "binary": 2}
    assert conn2.record().to_json()["server_messages"][1] == {"t": 0.0, "text": "not json"}


def test_a_lenient_replay_records_a_lifecycle_violation_and_goes_on(
    basic_session: RecordedSession,
) -> None:
    conn = connect(basic_session)
    play_basic(conn)
    conn.receive_message(FRAME, 0.35)
    conn.receive_message(TERMINATE, 0.36)
    # The connection goes on: the Termination and the close still come.
    assert conn.data_to_send(0.4)[-2:] == [
        Send(TERMINATION),
        CloseConnection(1000, "Session Ended"),
    ]
    record = conn.record()
    assert record.violations == (
        ViolationRecord(t=0.35, code=None, rule="audio after Terminate"),
        ViolationRecord(t=0.36, code=None, rule="a second Terminate"),
    )
    # The audio after Terminate is counted as received, but opened no gate.
    assert record.audio == AudioReceived(frames=5, bytes=8000, ms=200.0)
    assert [m.message for m in record.client_messages] == [Terminate()]
    assert record.problems() == [
        "connection 1, t=0.350 s: audio after Terminate",
        "connection 1, t=0.360 s: a second Terminate",
    ]


def test_frames_after_this_side_closed_are_still_checked(basic_session: RecordedSession) -> None:
    # The Termination and the close were handed out; the client's frames in flight
    # are checked and journaled, and change nothing else.
    for strict in (False, True):
        conn = connect(basic_session, strict=strict)
        play_basic(conn)
        assert conn.data_to_send(0.3)[-1] == CloseConnection(1000, "Session Ended")
        conn.receive_message(FRAME, 0.31)
        conn.receive_message("{nope", 0.32)
        conn.receive_message(FRAME, 0.33)  # after a rejection, nothing is checked
        assert conn.data_to_send(0.4) == []
        record = conn.record()
        assert [(v.t, v.code, v.rule[:22]) for v in record.violations] == [
            (0.31, None, "audio after Terminate"),
            (0.32, None, "Invalid client message"),
        ]
        assert record.close == CloseRecord(code=1000, reason="Session Ended", by="server")
        assert record.audio.frames == 5


def test_a_transport_violation_ends_the_connection_as_the_servers_close(
    basic_session: RecordedSession,
) -> None:
    conn = connect(basic_session)
    conn.data_to_send(0.0)
    conn.receive_message(FRAME, 0.05)
    conn.transport_violation(0.07, "WebSocket protocol error: Invalid opcode 0x3", 1002, "Invalid")
    assert conn.finished
    assert conn.data_to_send(0.5) == []
    conn.receive_message(FRAME, 0.1)  # what trio-websocket still had: changes nothing
    record = conn.record()
    assert record.close == CloseRecord(code=1002, reason="Invalid", by="server")
    assert record.violations == (
        ViolationRecord(t=0.07, code=1002, rule="WebSocket protocol error: Invalid opcode 0x3"),
    )
    assert record.audio.frames == 1


def test_a_transport_violation_after_a_close_keeps_that_close(
    basic_session: RecordedSession,
) -> None:
    conn = connect(basic_session, strict=True, pacing="wall")
    play_basic(conn)
    conn.receive_message('{"type":"ForceEndpoint"}', 0.31)
    conn.data_to_send(0.31)  # the 4900 close is handed out
    conn.transport_violation(0.4, "the client read nothing for 1 s", 1006, "send_timeout")
    record = conn.record()
    assert record.close == CloseRecord(
        code=4900, reason="the client sent ForceEndpoint after Terminate", by="server"
    )
    assert [v.code for v in record.violations] == [4900, 1006]


def test_the_clients_close_reason_loses_its_credentials(basic_session: RecordedSession) -> None:
    conn = ReplayConnection(
        ReplayPlan(basic_session),
        ReplayOptions(api_key="the-key"),
        target=TARGET + "&token=tok-123&webhook_auth_header_value=hook-456",
        authorization="auth-789",
    )
    conn.client_closed(4000, "the-key tok-123 hook-456 auth-789 tok-1234 bye")
    assert conn.record().close == CloseRecord(
        code=4000,
        reason="[credential] [credential] [credential] [credential] [credential]4 bye",
        by="client",
    )
    assert conn.redact("nothing secret") == "nothing secret"


def test_a_strict_replay_closes_4900_naming_the_rule(basic_session: RecordedSession) -> None:
    # Wall pacing: the Termination is not due yet when the ForceEndpoint comes.
    conn = connect(basic_session, strict=True, pacing="wall")
    play_basic(conn)
    conn.receive_message('{"type":"ForceEndpoint"}', 0.31)
    actions = conn.data_to_send(0.31)
    assert Send(TERMINATION) not in actions
    # Not "replay mismatch: ...": code 4900 says that (see aai_proto.CLOSE_CODES).
    assert actions[-1] == CloseConnection(4900, "the client sent ForceEndpoint after Terminate")
    assert conn.finished
    assert conn.record().violations == (
        ViolationRecord(t=0.31, code=4900, rule="ForceEndpoint after Terminate"),
    )


def test_the_services_rejections_are_violations_with_their_code(
    basic_session: RecordedSession,
) -> None:
    bad_json = connect(basic_session)
    bad_json.receive_message("{nope", 0.5)
    bad_json.data_to_send(0.5)
    [violation] = bad_json.record().violations
    assert (violation.t, violation.code) == (0.5, 3006)
    assert violation.rule.startswith("Invalid client message: ")
    assert bad_json.record().close == CloseRecord(
        code=3006, reason="See Error message for details", by="server"
    )
    unauthorized = connect(basic_session, api_key="the-key")
    assert unauthorized.record().violations == (
        ViolationRecord(t=0.0, code=1008, rule="Unauthorized connection: missing API key or token"),
    )
    assert unauthorized.record().params is None
    assert unauthorized.record().problems() == [
        "connection 1, t=0.000 s: Unauthorized connection: missing API key or token (closed 1008)"
    ]


def test_a_strict_departure_is_a_problem_and_a_lenient_one_is_not(
    basic_session: RecordedSession,
) -> None:
    for strict in (False, True):
        conn = connect(basic_session, target="/v3/ws?sample_rate=8000", strict=strict)
        assert conn.record().departures == (
            Departure(t=0.0, expected="sample_rate=16000", got="sample_rate=8000"),
        )
        expected = (
            [
                "connection 1, t=0.000 s: departed from the recording: expected "
                "sample_rate=16000, got sample_rate=8000 (closed 4900)"
            ]
            if strict
            else []
        )
        assert conn.record().problems() == expected


def test_strict_ignores_unknown_parameters_and_credentials(
    basic_session: RecordedSession,
) -> None:
    target = TARGET + "&token=t&webhook_auth_header_value=w&brand_new_option=1"
    conn = connect(basic_session, target=target, strict=True)
    assert conn.record().departures == ()
    assert not conn.finished


def test_the_webhook_secret_never_reaches_the_journal(basic_session: RecordedSession) -> None:
    target = TARGET + "&webhook_url=https%3A%2F%2Fx&webhook_auth_header_value=HOOK-SECRET"
    record = connect(basic_session, target=target).record()
    assert record.params is not None
    assert record.params.webhook_auth_header_value is None
    assert record.params.webhook_url == "https://x"
    assert "HOOK-SECRET" not in repr(record) + json.dumps(record.to_json())


def test_the_first_close_is_the_one_journaled(basic_session: RecordedSession) -> None:
    conn = connect(basic_session)
    play_basic(conn)
    conn.data_to_send(0.3)
    conn.client_closed(1000, "")
    assert conn.record().close == CloseRecord(code=1000, reason="Session Ended", by="server")
    dropped = connect(basic_session)
    dropped.client_closed()
    assert dropped.record().close == CloseRecord(code=1006, reason="", by="client")


# -- the server's journal ------------------------------------------------------------


async def _three_connections(session: RecordedSession) -> list[ConnectionRecord]:
    """A client that reads Begin and leaves; a refused path; one with credentials."""
    async with open_replay_server(session) as server:
        async with connect_url(server.url + "?" + QUERY) as ws:
            await ws.get_message()
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        async with stream:
            await stream.send_all(
                f"GET /v2/ws?{QUERY} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            assert (await stream.receive_some()).startswith(b"HTTP/1.1 404 ")
        key = (b"Authorization", b"KEY-SECRET")
        async with connect_url(server.url + "?" + QUERY + "&token=TOKEN-SECRET", [key]) as ws:
            await ws.send_message(TERMINATE)
            await ws.get_message()  # Begin
        while len(server.journal) < 3 or server.journal[2].close is None:
            await trio.sleep(0.01)
        return server.journal


async def test_the_server_journals_every_request_in_order(
    basic_session: RecordedSession,
) -> None:
    with trio.fail_after(20):
        journal = await _three_connections(basic_session)
    assert [r.connection for r in journal] == [1, 2, 3]
    assert journal[0].close == CloseRecord(code=1000, reason="", by="client")
    assert journal[1].request == Request(path="/v2/ws", query=dict(_pairs(QUERY)))
    assert journal[1].violations == (
        ViolationRecord(t=0.0, code=None, rule="no such path: '/v2/ws' (connect to /v3/ws)"),
    )
    assert journal[1].params is None
    assert journal[1].close == CloseRecord(
        code=1006, reason="HTTP 404: the upgrade was refused", by="server"
    )
    assert [m.message for m in journal[2].client_messages] == [Terminate()]
    for record in journal:
        assert "SECRET" not in repr(record) + json.dumps(record.to_json())


async def test_the_journal_of_an_aai_proto_trio_client() -> None:
    params = StreamingParams(sample_rate=16000, format_turns=True)
    path = Path(__file__).resolve().parents[2] / "fixtures" / "sessions"
    with trio.fail_after(20):
        async with open_replay_server(path / "universal-format-turns.jsonl") as server:
            async with aai_proto.trio.open_session(
                params, url=server.url, api_key="KEY-SECRET"
            ) as session:
                await session.send_audio(FRAME * 4)
                await session.force_endpoint()
                await session.update_configuration(max_turn_silence=700)
                await session.send_audio(FRAME * 2)
                await session.terminate()
            while server.journal[0].close is None:
                await trio.sleep(0.01)
            [record] = server.journal
    assert record.params == params
    assert [m.message for m in record.client_messages] == [
        ForceEndpoint(),
        UpdateConfiguration(max_turn_silence=700),
        Terminate(),
    ]
    assert record.audio == AudioReceived(frames=6, bytes=9600, ms=300.0)
    assert record.violations == ()
    assert record.close == CloseRecord(code=1000, reason="Session Ended", by="server")
    assert "SECRET" not in repr(record) + json.dumps(record.to_json())


def test_a_journal_without_messages_keeps_the_rest(basic_session: RecordedSession) -> None:
    conn = ReplayConnection(
        ReplayPlan(basic_session), target=TARGET, session_id="live", journal_messages=False
    )
    play_basic(conn)
    conn.receive_message(FRAME, 0.31)
    conn.data_to_send(0.4)
    record = conn.record()
    assert (record.client_messages, record.server_messages) == ((), ())
    assert record.audio == AudioReceived(frames=5, bytes=8000, ms=200.0)
    assert record.violations == (ViolationRecord(t=0.31, code=None, rule="audio after Terminate"),)
    assert record.close == CloseRecord(code=1000, reason="Session Ended", by="server")


async def test_a_server_that_keeps_no_journal_hands_each_record_over(
    basic_session: RecordedSession,
) -> None:
    handed: list[ConnectionRecord] = []
    with trio.fail_after(20):
        async with open_replay_server(
            basic_session, keep_journal=False, on_closed=handed.append
        ) as server:
            async with connect_url(server.url + "?" + QUERY) as ws:
                await ws.get_message()
            while not handed:
                await trio.sleep(0.01)
            assert server.journal == []
    [record] = handed
    assert record.connection == 1
    assert json.loads(record.server_messages[0].data)["type"] == "Begin"  # kept: it is read
    assert record.close == CloseRecord(code=1000, reason="", by="client")


def test_a_target_urllib_cannot_split_is_journaled_without_it() -> None:
    from aai_replay._journal import JournalWriter

    # Nothing of it is kept: it could hold a credential nobody can strip.
    assert JournalWriter(7, "//[x/v3/ws?token=SECRET").record().request == Request(
        path="?", query={}
    )
