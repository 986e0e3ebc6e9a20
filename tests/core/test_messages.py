"""Message parsing, driven by the files in fixtures/messages: the name says if each must parse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aai_proto import (
    Begin,
    ForceEndpoint,
    Heartbeat,
    KeepAlive,
    LLMGatewayResponse,
    RemoteProtocolError,
    ServerError,
    ServerWarning,
    SessionConfiguration,
    Silence,
    SpeakerRevision,
    SpeakerRevisionItem,
    SpeechStarted,
    Terminate,
    Termination,
    Turn,
    UnknownMessage,
    UpdateConfiguration,
    Word,
    dump_client_message,
    dump_server_message,
    parse_client_message,
    parse_server_message,
)

MESSAGES = Path(__file__).parents[2] / "fixtures" / "messages"
SERVER = sorted((MESSAGES / "server").glob("*.json"))
CLIENT = sorted((MESSAGES / "client").glob("*.json"))

# The event type each good server fixture parses to, by the word after "ok-".
SERVER_KINDS: dict[str, type[object]] = {
    "begin": Begin,
    "turn": Turn,
    "speech": SpeechStarted,
    "termination": Termination,
    "error": ServerError,
    "warning": ServerWarning,
    "heartbeat": Heartbeat,
    "silence": Silence,
    "speaker": SpeakerRevision,
    "llm": LLMGatewayResponse,
    "unknown": UnknownMessage,
}
CLIENT_KINDS: dict[str, type[object]] = {
    "terminate": Terminate,
    "force": ForceEndpoint,
    "keep": KeepAlive,
    "update": UpdateConfiguration,
}


def _common(original: object, dumped: object) -> object:
    """``original`` cut down, at every depth, to the keys ``dumped`` has."""
    if isinstance(original, dict) and isinstance(dumped, dict):
        return {k: _common(original[k], dumped[k]) for k in dumped if k in original}
    if isinstance(original, list) and isinstance(dumped, list) and len(original) == len(dumped):
        return [_common(a, b) for a, b in zip(original, dumped, strict=True)]
    return original


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def test_fixture_folders_cover_every_type() -> None:
    server_kinds = {p.stem.split("-")[1] for p in SERVER if p.stem.startswith("ok-")}
    client_kinds = {p.stem.split("-")[1] for p in CLIENT if p.stem.startswith("ok-")}
    assert server_kinds == set(SERVER_KINDS)
    assert client_kinds == set(CLIENT_KINDS)
    assert all(p.stem.startswith(("ok-", "bad-")) for p in SERVER + CLIENT)


@pytest.mark.parametrize("path", SERVER, ids=_ids(SERVER))
def test_server_fixture(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    if path.stem.startswith("bad-"):
        with pytest.raises(RemoteProtocolError):
            parse_server_message(text)
        return
    event = parse_server_message(text)
    assert type(event) is SERVER_KINDS[path.stem.split("-")[1]]
    # Nothing known is lost: dumping gives back every key the input had that the
    # event knows, with equal values; parsing the dump gives the same event.
    # (The legacy Error form is written with its "type".)
    dumped = json.loads(dump_server_message(event))
    original = json.loads(text)
    original.setdefault("type", dumped["type"])
    assert _common(original, dumped) == dumped
    assert parse_server_message(dump_server_message(event)) == event


@pytest.mark.parametrize("path", CLIENT, ids=_ids(CLIENT))
def test_client_fixture(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    if path.stem.startswith("bad-"):
        with pytest.raises(RemoteProtocolError):
            parse_client_message(text)
        return
    message = parse_client_message(text)
    assert type(message) is CLIENT_KINDS[path.stem.split("-")[1]]
    assert parse_client_message(dump_client_message(message)) == message


def test_begin_exact() -> None:
    text = (MESSAGES / "server" / "ok-begin-configuration.json").read_text()
    assert parse_server_message(text) == Begin(
        id="5b0e7c33-2a43-4b8e-9d0c-1f0fbb1a2c11",
        expires_at=1764000000,
        configuration=SessionConfiguration(
            model="u3-rt-pro", mode="balanced", api_version="2026-03-01"
        ),
    )


def test_turn_exact_and_integer_confidence_is_float() -> None:
    text = (MESSAGES / "server" / "ok-turn-u3-final.json").read_text()
    turn = parse_server_message(text)
    assert isinstance(turn, Turn)
    assert turn.end_of_turn_confidence == 1.0
    assert type(turn.end_of_turn_confidence) is float
    assert turn.words[0] == Word(
        start=5120, end=5200, text="So", confidence=0.99, word_is_final=True
    )
    assert turn.words[-1].text == "works."
    assert type(turn.words) is tuple
    assert turn.utterance == turn.transcript == "So the thing is, it works."
    assert turn.speaker_label is None


def test_speaker_fields() -> None:
    turn = parse_server_message((MESSAGES / "server" / "ok-turn-speaker.json").read_text())
    assert isinstance(turn, Turn)
    assert (turn.speaker_label, turn.speaker_confidence, turn.words[0].speaker) == ("B", 0.77, "B")
    rev = parse_server_message((MESSAGES / "server" / "ok-speaker-revision.json").read_text())
    assert rev == SpeakerRevision(
        revisions=(
            SpeakerRevisionItem(
                turn_order=0,
                speaker_label="A",
                words=(
                    Word(
                        start=480,
                        end=560,
                        text="Hi,",
                        confidence=0.93,
                        word_is_final=True,
                        speaker="A",
                    ),
                ),
            ),
            SpeakerRevisionItem(turn_order=1, speaker_label="B", words=()),
        )
    )


def test_legacy_error_and_unknown_message() -> None:
    assert parse_server_message('{"error": "Invalid API key"}') == ServerError(
        error_code=None, error="Invalid API key"
    )
    assert json.loads(dump_server_message(ServerError(error="x"))) == {
        "error": "x",
        "type": "Error",
    }
    unknown = parse_server_message('{"type": "TurnSummary", "n": [1, {"a": null}]}')
    assert unknown == UnknownMessage(
        type="TurnSummary", data={"type": "TurnSummary", "n": [1, {"a": None}]}
    )
    assert json.loads(dump_server_message(unknown)) == {
        "type": "TurnSummary",
        "n": [1, {"a": None}],
    }


def test_llm_data_kept_as_json() -> None:
    event = parse_server_message((MESSAGES / "server" / "ok-llm-gateway-response.json").read_text())
    assert isinstance(event, LLMGatewayResponse)
    assert event.data == {
        "choices": [{"message": {"role": "assistant", "content": "Hello Sonny!"}}],
        "usage": None,
    }


def test_dump_writes_type_last_and_omits_unset_optionals() -> None:
    text = dump_server_message(
        Turn(
            turn_order=0,
            turn_is_formatted=False,
            end_of_turn=False,
            transcript="",
            end_of_turn_confidence=0.0,
            words=(),
        )
    )
    assert text == (
        '{"turn_order":0,"turn_is_formatted":false,"end_of_turn":false,"transcript":"",'
        '"end_of_turn_confidence":0.0,"words":[],"type":"Turn"}'
    )
    assert dump_server_message(SpeakerRevision()) == '{"revisions":[],"type":"SpeakerRevision"}'


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"type": "Turn", "turn_order": "1"}', "expected an integer, got '1' @ $.turn_order"),
        ('{"type": "Begin", "id": "x"}', "required field missing @ $.expires_at"),
        (
            '{"type": "Begin", "id": "x", "expires_at": 1, "configuration": 5}',
            "got 5 @ $.configuration",
        ),
        ("[1]", "must be a JSON object, got list"),
        ("{", "not valid JSON"),
        ('{"type": 5}', "no string 'type'"),
        ('{"type": "Heartbeat", "total_audio_received_ms": Infinity}', "not valid JSON"),
    ],
)
def test_server_errors_say_what_and_where(text: str, fragment: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_server_message(text)
    assert fragment in str(info.value)


def test_bytes_are_decoded_as_utf8() -> None:
    assert parse_server_message(
        b'{"type":"Termination","audio_duration_seconds":1,"session_duration_seconds":2}'
    ) == (Termination(audio_duration_seconds=1, session_duration_seconds=2))
    with pytest.raises(RemoteProtocolError):
        parse_server_message(b'{"error": "\xff"}')


def test_client_messages_exact() -> None:
    assert dump_client_message(Terminate()) == '{"type":"Terminate"}'
    assert dump_client_message(ForceEndpoint()) == '{"type":"ForceEndpoint"}'
    assert dump_client_message(KeepAlive()) == '{"type":"KeepAlive"}'
    update = UpdateConfiguration(keyterms_prompt=["a b", "c"], vad_threshold=1, format_turns=False)
    assert dump_client_message(update) == (
        '{"type":"UpdateConfiguration","vad_threshold":1.0,"format_turns":false,'
        '"keyterms_prompt":["a b","c"]}'
    )
    parsed = parse_client_message(
        (MESSAGES / "client" / "ok-update-configuration-deprecated-name.json").read_text()
    )
    assert parsed == UpdateConfiguration(min_turn_silence=160)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"type": "Stop"}', "unknown client message type 'Stop'"),
        ("{}", "unknown client message type None"),
        ('{"type": "UpdateConfiguration", "vad_threshold": 2}', "Invalid 'vad_threshold'"),
        ("nope", "not valid JSON"),
    ],
)
def test_client_errors_say_what(text: str, fragment: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_client_message(text)
    assert fragment in str(info.value)
