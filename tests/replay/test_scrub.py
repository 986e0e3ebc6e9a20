"""Scrubbing: no match of a masked pattern survives in any spoken text."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aai_replay import ClientMessage, RecordedSession, ServerMessage, ServerRaw, load_session
from aai_replay._scrub import mask_text, scrub_session

ROOT = Path(__file__).resolve().parents[2]


def spoken_texts(session: RecordedSession) -> list[str]:
    """Every text the scrub promises to cover, found independently of it."""
    found: list[str] = []

    def walk(value: Any, spoken: bool) -> None:
        if isinstance(value, str) and spoken:
            found.append(value)
        elif isinstance(value, dict | tuple | list) or hasattr(value, "items"):
            items = value.items() if hasattr(value, "items") else enumerate(value)
            for key, item in items:
                walk(item, spoken or key in ("transcript", "utterance", "text"))

    for entry in session.entries:
        if isinstance(entry, ServerRaw):
            found.append(entry.text)
        elif isinstance(entry, ServerMessage):
            is_llm = entry.message.get("type") == "LLMGatewayResponse"
            for key, value in entry.message.items():
                walk(
                    value, key in ("transcript", "utterance", "text") or (is_llm and key == "data")
                )
    return found


def test_a_shipped_session_keeps_no_name(sessions_dir: Path) -> None:
    session = load_session(sessions_dir / "universal-format-turns.jsonl")
    assert any("Sonny" in text for text in spoken_texts(session))
    scrubbed = scrub_session(session, mask_text([r"(?i)sonny", r"\btwo\b"]))
    texts = spoken_texts(scrubbed)
    assert not [t for t in texts if re.search(r"(?i)sonny|\btwo\b", t)]
    assert "Hi, my name is ***." in texts
    # Nothing else changes: the same entries, times, types and other fields.
    assert len(scrubbed.entries) == len(session.entries)
    for before, after in zip(session.entries, scrubbed.entries, strict=True):
        assert type(before) is type(after)
        assert before.t == after.t
        if isinstance(before, ServerMessage) and isinstance(after, ServerMessage):
            assert before.message.keys() == after.message.keys()
            assert before.message.get("turn_order") == after.message.get("turn_order")
    assert scrubbed.header == session.header


words = st.text(alphabet="abcdeXYZ 0123456789", max_size=20)


@given(
    transcript=words,
    utterance=words,
    word_texts=st.lists(words, max_size=5),
    raw=words,
    data=st.recursive(words | st.integers(), lambda c: st.lists(c, max_size=3), max_leaves=6),
    pattern=st.sampled_from([r"\d+", r"X+Y?", r"(?i)abc", r"e\s", r"[aZ]"]),
)
def test_no_match_survives_anywhere(
    transcript: str,
    utterance: str,
    word_texts: list[str],
    raw: str,
    data: Any,
    pattern: str,
) -> None:
    turn = {
        "turn_order": 0,
        "turn_is_formatted": False,
        "end_of_turn": False,
        "transcript": transcript,
        "utterance": utterance,
        "end_of_turn_confidence": 0.5,
        "words": [{"start": 0, "end": 1, "text": w, "confidence": 1.0} for w in word_texts],
        "type": "Turn",
    }
    revision = {"revisions": [{"turn_order": 0, "speaker_label": "A", "words": turn["words"]}]}
    llm = {"turn_order": 0, "transcript": transcript, "data": data, "type": "LLMGatewayResponse"}
    session = RecordedSession(
        load_session(ROOT / "fixtures/sessions/synth-plain.jsonl").header,
        [
            ServerMessage(0.0, {"type": "Begin", "id": "x", "expires_at": 1}),
            ServerMessage(0.1, turn),
            ServerRaw(0.2, raw),
            ServerMessage(0.3, {**revision, "type": "SpeakerRevision"}),
            ServerMessage(0.4, llm),
            ClientMessage(0.5, {"type": "Terminate"}),
        ],
    )
    scrubbed = scrub_session(session, mask_text([pattern]))
    assert not [t for t in spoken_texts(scrubbed) if re.search(pattern, t)]
    # The Begin and the client's message are untouched.
    assert scrubbed.entries[0] == session.entries[0]
    assert scrubbed.entries[-1] == session.entries[-1]


def test_a_hook_can_drop_entries(basic_session: RecordedSession) -> None:
    def no_partials(entry: Any) -> Any:
        if isinstance(entry, ServerMessage) and entry.message.get("end_of_turn") is False:
            return None
        return entry

    scrubbed = scrub_session(basic_session, no_partials)
    assert len(scrubbed.entries) == len(basic_session.entries) - 1


@pytest.mark.parametrize(
    ("patterns", "mask", "error"),
    [
        ([], "***", "at least one pattern"),
        (["("], "***", r"not a regular expression: '\('"),
        ([r"\d*"], "***", "matches the empty string"),
        ([r"\*"], "***", "the mask '\\*\\*\\*' matches the pattern"),
    ],
)
def test_bad_masks_are_refused(patterns: list[str], mask: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        mask_text(patterns, mask=mask)


def test_a_pattern_of_the_wrong_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="a pattern is a str or a compiled regex, got bytes"):
        mask_text([b"x"])  # type: ignore[list-item]


def test_a_recording_made_through_a_masking_recorder_holds_no_match(tmp_path: Path) -> None:
    import trio

    from aai_proto.trio import open_session
    from aai_replay import BackgroundRecorder, BackgroundReplayServer

    plain = load_session(ROOT / "fixtures/sessions/synth-plain.jsonl")
    audio = plain.audio_path
    assert audio is not None
    out = tmp_path / "masked.jsonl"
    pattern = r"(?i)hello|synthesized"

    async def client(url: str) -> list[str]:
        with trio.fail_after(30):
            async with open_session(plain.params, url=url) as live:
                await live.stream_file(audio, realtime=False)
                await live.terminate()
                return [getattr(e, "transcript", "") async for e in live]

    with (
        BackgroundReplayServer(plain) as upstream,
        BackgroundRecorder(out, upstream=upstream.url, hook=mask_text([pattern])) as recorder,
    ):
        live = trio.run(client, recorder.url)
    # The client got the frames as they came; the file got them masked.
    assert "hello there" in live
    recorded = load_session(out)
    texts = spoken_texts(recorded)
    assert "*** there" in texts
    assert not [t for t in texts if re.search(pattern, t)]
    assert "hello" not in out.read_text().lower()
