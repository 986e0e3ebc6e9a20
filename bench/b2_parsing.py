"""B2: parsing server messages, in messages per second.

What users pay for: every text frame the server sends goes through
``parse_server_message`` (JSON text -> a typed, validated event). The corpus is
deterministic (seeded) and shaped like real sessions: a ``Begin`` (with or without
``configuration``), Turns of 10-40 words (classic partials, end-of-turn and
formatted finals, U3 turns with ``utterance``, language and speaker fields), and a
``Termination``; each message is compact JSON with ``type`` last, as the service
writes it.

The baseline is the official SDK's pydantic models (``assemblyai`` ``TurnEvent``,
``BeginEvent``, ``TerminationEvent``; a bench-only dependency), the faster of
``Model.model_validate(json.loads(text))`` (what the SDK does, dispatching on
``type``) and ``Model.model_validate_json(text)`` (given the right model for free,
without reading ``type``). ``json.loads`` alone is the ceiling of any parser built
on the standard library. All of them run in the same process, interleaved, on the
same texts; each figure is the median of the repetitions.

Every aai-proto backend is measured: ``json`` (the pure path: the standard
``json`` plus the strict cattrs reference converter) and, when ``msgspec`` is installed
(``aai-proto[fast]``), ``msgspec``. A second copy of the mixed corpus with ``type``
*first* shows the accelerator without its shortcut for the service's key order.
"""

from __future__ import annotations

import gc
import json
import random
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from _common import row

from aai_proto import parse_server_message
from aai_proto._wire import BACKENDS, _parse_reference

TARGET = 1.5
VOCAB = tuple(
    " ".join(
        (
            "so the thing is it works and then we went to see what the team had built over",
            "the weekend because nobody could tell whether our numbers were right or if",
            "somebody had made a mistake in march with three hundred orders from Chicago",
        )
    ).split()
)
U3_MODELS = ("u3-rt-pro",)
CLASSIC_MODELS = ("universal-streaming-english", "universal-streaming-multilingual")


def _confidence(rng: random.Random) -> float:
    # Real confidences come with anything from 2 to 17 significant digits.
    return round(rng.uniform(0.35, 1.0), rng.choice((2, 4, 7, 17)))


def _words(
    rng: random.Random, n: int, start: int, *, formatted: bool, final: bool, speaker: str | None
) -> list[dict[str, Any]]:
    words = []
    t = start
    for i in range(n):
        text = rng.choice(VOCAB)
        if formatted:
            if i == 0:
                text = text.capitalize()
            if i == n - 1:
                text += "."
            elif rng.random() < 0.1:
                text += ","
        duration = rng.randint(80, 480)
        word: dict[str, Any] = {
            "start": t,
            "end": t + duration,
            "text": text,
            "confidence": _confidence(rng),
            "word_is_final": final or i < n - rng.randint(1, 3),
        }
        if speaker is not None:
            word["speaker"] = speaker
        words.append(word)
        t += duration + rng.randint(0, 240)
    return words


def _turn(rng: random.Random, order: int, start: int, *, u3: bool) -> dict[str, Any]:
    n = rng.randint(10, 40)
    shape = rng.choice(("partial", "end_of_turn", "formatted"))
    formatted = shape == "formatted"
    end_of_turn = shape != "partial"
    speaker = rng.choice(("A", "B")) if u3 and rng.random() < 0.5 else None
    words = _words(rng, n, start, formatted=formatted, final=end_of_turn, speaker=speaker)
    transcript = " ".join(w["text"] for w in words if w["word_is_final"])
    msg: dict[str, Any] = {
        "turn_order": order,
        "turn_is_formatted": formatted,
        "end_of_turn": end_of_turn,
        "transcript": transcript,
        # JSON may hold 0 or 1 here.
        "end_of_turn_confidence": rng.choice((0, 1)) if u3 else _confidence(rng),
        "words": words,
    }
    if u3:
        msg["utterance"] = transcript if end_of_turn else ""
        msg["language_code"] = "en"
        msg["language_confidence"] = _confidence(rng)
        if speaker is not None:
            msg["speaker_label"] = speaker
            msg["speaker_confidence"] = _confidence(rng)
    elif rng.random() < 0.5:
        msg["utterance"] = ""
    msg["type"] = "Turn"
    return msg


def _session(rng: random.Random, turns: int) -> list[dict[str, Any]]:
    u3 = rng.random() < 0.5
    begin: dict[str, Any] = {
        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "expires_at": 1_764_000_000 + rng.randint(0, 10**6),
    }
    if u3 or rng.random() < 0.5:
        begin["configuration"] = {
            "model": rng.choice(U3_MODELS if u3 else CLASSIC_MODELS),
            "mode": "balanced",
            "api_version": "2026-03-01",
        }
    begin["type"] = "Begin"
    messages = [begin]
    t = rng.randint(0, 2000)
    for order in range(turns):
        messages.append(_turn(rng, order, t, u3=u3))
        t += rng.randint(3_000, 12_000)
    seconds = t // 1000 + 1
    messages.append(
        {
            "audio_duration_seconds": seconds,
            "session_duration_seconds": seconds + rng.randint(0, 3),
            "type": "Termination",
        }
    )
    return messages


def corpus(*, sessions: int, turns: int, seed: int = 2) -> list[dict[str, Any]]:
    """The messages of ``sessions`` sessions of ``turns`` Turns each, as dicts."""
    rng = random.Random(seed)
    return [m for _ in range(sessions) for m in _session(rng, turns)]


def _texts(messages: list[dict[str, Any]], *, type_first: bool = False) -> list[str]:
    if type_first:
        messages = [{"type": m["type"], **m} for m in messages]
    return [json.dumps(m, separators=(",", ":")) for m in messages]


def _sdk_models() -> dict[str, Any] | None:
    try:
        from assemblyai.streaming.v3 import BeginEvent, TerminationEvent, TurnEvent
    except ImportError:  # pragma: no cover - a bench-only dependency
        return None
    return {"Begin": BeginEvent, "Turn": TurnEvent, "Termination": TerminationEvent}


Method = Callable[[list[str]], None]


def _each(parse: Callable[[str], object]) -> Method:
    # Each result is dropped at once, as a client handles one message at a time:
    # keeping them all would make the garbage collector's passes grow with the run.
    def method(texts: list[str]) -> None:
        for t in texts:
            parse(t)

    return method


def _methods(texts: list[str]) -> dict[str, Method]:
    """Each way of parsing a list of texts, by name."""
    methods: dict[str, Method] = {}
    for name, parse in sorted(BACKENDS.items()):
        methods[f"aai-proto [{name}]"] = _each(parse)
    loads = json.loads
    methods["json.loads alone"] = _each(loads)
    models = _sdk_models()
    if models is not None:

        def sdk_dict(ts: list[str]) -> None:
            for t in ts:
                data = loads(t)
                models[data["type"]].model_validate(data)

        # model_validate_json is handed the right model: no dispatch cost at all.
        chosen = [(t, models[loads(t)["type"]].model_validate_json) for t in texts]

        def sdk_json(ts: list[str]) -> None:
            assert ts is texts
            for t, validate in chosen:
                validate(t)

        methods["SDK model_validate(json.loads(text))"] = sdk_dict
        methods["SDK model_validate_json(text)"] = sdk_json
    return methods


def _check(texts: list[str]) -> None:
    """Every backend parses every text, to the reference's event."""
    for text in texts:
        expected = _parse_reference(text)
        assert parse_server_message(text) == expected
        for parse in BACKENDS.values():
            assert parse(text) == expected


def measure(texts: list[str], repeats: int, passes: int) -> dict[str, float]:
    """Median messages per second of each method over ``repeats`` interleaved runs."""
    methods = _methods(texts)
    for method in methods.values():  # warm up
        method(texts)
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeats):
        for name, method in methods.items():
            gc.collect()
            t0 = time.perf_counter()
            for _ in range(passes):
                method(texts)
            times[name].append(time.perf_counter() - t0)
    return {name: len(texts) * passes / statistics.median(ts) for name, ts in times.items()}


def _rows(label: str, rates: dict[str, float]) -> list[dict[str, Any]]:
    rows = []
    sdk = {k: v for k, v in rates.items() if k.startswith("SDK ")}
    best = max(sdk, key=sdk.__getitem__) if sdk else None
    loads = rates["json.loads alone"]
    for name, rate in rates.items():
        if not name.startswith("aai-proto"):
            continue
        if best is not None:
            ratio = rate / sdk[best]
            rows.append(
                row(
                    f"{label}: {name}",
                    rate,
                    "msgs/s",
                    f">= {TARGET}x the SDK",
                    ratio >= TARGET,
                    baseline=sdk[best],
                    baseline_name=best,
                )
            )
        else:  # pragma: no cover - without the SDK
            rows.append(row(f"{label}: {name}", rate, "msgs/s", "(SDK not installed)", None))
        rows.append(
            row(
                f"{label}: {name} vs json.loads alone",
                rate,
                "msgs/s",
                "report the fraction",
                None,
                baseline=loads,
                baseline_name="json.loads alone",
            )
        )
    for name in ("json.loads alone", *sdk):
        rows.append(row(f"{label}: {name}", rates[name], "msgs/s", "reference", None))
    return rows


def run(*, quick: bool = False) -> dict[str, Any]:
    """Measure every corpus; ``quick`` is a smoke run (tiny corpus, few repetitions)."""
    sessions, turns, repeats, passes = (2, 4, 5, 1) if quick else (20, 30, 15, 3)
    messages = corpus(sessions=sessions, turns=turns)
    corpora = {
        "mixed sessions": _texts(messages),
        "Turns only": _texts([m for m in messages if m["type"] == "Turn"]),
        "Begin + Termination": _texts([m for m in messages if m["type"] != "Turn"]),
        "mixed, type first": _texts(messages, type_first=True),
    }
    rows = []
    for label, texts in corpora.items():
        _check(texts)
        rows.extend(_rows(label, measure(texts, repeats, passes)))
    turns_only = corpora["Turns only"]
    words = [len(json.loads(t)["words"]) for t in turns_only]
    notes = (
        f"{len(corpora['mixed sessions'])} messages: {sessions} sessions of {turns} Turns "
        f"({min(words)}-{max(words)} words, mean {statistics.mean(words):.1f}, mean "
        f"{statistics.mean(map(len, turns_only)):.0f} characters) plus a Begin and a "
        f"Termination each; median of {repeats} interleaved runs of {passes} pass(es). "
        "Backends: "
        + ", ".join(sorted(BACKENDS))
        + "; the default is "
        + ("msgspec" if "msgspec" in BACKENDS else "json")
        + ". The SDK's model_validate_json is handed the right model per text (free "
        "dispatch); validation is strict on our side in every backend."
    )
    return {"id": "B2", "title": "Parsing server messages (msgs/s)", "rows": rows, "notes": notes}


if __name__ == "__main__":  # pragma: no cover
    import sys

    result = run(quick="--quick" in sys.argv)
    for r in result["rows"]:
        ratio = f"  {r['ratio']:.2f}x {r['baseline_name']}" if r["ratio"] else ""
        print(f"{r['name']:<60} {r['value']:>12,.0f} {r['unit']}{ratio}")
    print(result["notes"])
