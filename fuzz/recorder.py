"""Fuzz the recorder's frame decisions: ``aai_replay._record.FrameRelay``, without sockets.

Usage::

    python fuzz/recorder.py [--count N] [--seed S]

Each input is one frame -- text or binary, from the server or from the client --
fed to a relay that writes its session to ``os.devnull`` (the real session writer,
every check and encoding included, but no disk). A relay lives for up to
``FRAMES_PER_RELAY`` frames, or until its connection is over; the next gets another
of ``QUERIES`` (or, rarely, a request the service refuses: then the relay checks
nothing). Text frames are the shipped fixtures (``fixtures/messages/``, the
messages of ``fixtures/sessions/``), unchanged or mutated by ``_mutate`` (values of
another type, huge numbers, ``NaN``, deep nesting, lone surrogates as escapes and
as characters, truncation, duplicate keys, flipped bits), and random text. Binary
frames have the sizes around the service's limits.

The documented outcomes are ``FrameOutcome.name`` prefixed with the side:
``server: forwarded, recorded server``, ``client: answered 3006, not recorded``...
Two properties are checked on every frame against an independent
``aai_proto.ClientChecker`` told the same client frames (the service): a frame the
receiving peer would accept -- every server frame, a client frame the service does
not refuse -- is forwarded as the very object received; a client frame the service
refuses gets exactly the service's answer and is not forwarded. A broken property
counts as ``UNDOCUMENTED Broken: <which>``, any exception as ``UNDOCUMENTED <type>``.

The exit status is 1 if anything undocumented happened, else 0.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _mutate, run as a script or not

from _mutate import Json, dump, load, mutate_structure, mutate_texts, shorten

from aai_proto import ClientChecker, Rejection
from aai_replay import ClientMessage as RecordedClientMessage
from aai_replay import (
    Header,
    Request,
    ServerMessage,
    ServerRaw,
    SessionWriter,
    load_session,
)
from aai_replay._record import FrameOutcome, FrameRelay

__all__ = ["DEFAULT_COUNT", "Broken", "run"]

DEFAULT_COUNT: Final = 100_000
ROOT: Final = Path(__file__).resolve().parents[1]
FIXTURES: Final = ROOT / "fixtures"
FRAMES_PER_RELAY: Final = 40
QUERIES: Final = (
    "sample_rate=16000",
    "sample_rate=16000&encoding=pcm_s16le&format_turns=true",
    "sample_rate=8000&encoding=pcm_mulaw",
    "encoding=opus",
)
# Refused by the checker: the client's frames go unchecked. Rarely: such a relay is
# never closed by an answer, so it lives longer and takes more frames.
UNCHECKED_QUERY: Final = "sample_rate=fast"
# Binary frame sizes around the service's limits at 16 kHz pcm_s16le (32 bytes a ms),
# and at 8 kHz pcm_mulaw (8 bytes a ms).
_AUDIO_SIZES: Final = (0, 1, 2, 399, 400, 1599, 1600, 1601, 3200, 8000, 31_999, 32_000, 32_002)
_RANDOM_CHARS: Final = '{}[]":,\\ 0123456789.eE+-tfnul\x00\n\u2028\ud800\udc00\udfff\ufeffé'


class Broken(Exception):
    """A documented property that does not hold for one frame."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


# -- seeds ----------------------------------------------------------------------------


def _session_texts() -> tuple[list[str], list[str]]:
    """The server and client text frames of the shipped sessions, as they were sent."""
    server: list[str] = []
    client: list[str] = []
    for path in sorted((FIXTURES / "sessions").glob("*.jsonl")):
        for entry in load_session(path).entries:
            if isinstance(entry, ServerMessage):
                server.append(json.dumps(dict(entry.message), separators=(",", ":")))
            elif isinstance(entry, ServerRaw):
                server.append(entry.text)
            elif isinstance(entry, RecordedClientMessage):
                client.append(json.dumps(dict(entry.message)))
    # Each session repeats its kinds of message: a few of each is enough.
    return sorted(set(server))[:400], sorted(set(client))


def _fixture_texts(folder: str) -> list[str]:
    return [p.read_text("utf-8") for p in sorted((FIXTURES / "messages" / folder).glob("*.json"))]


class _Seeds:
    """The texts a side's frames start from, and their parsed forms (for structure mutation)."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.texts = list(texts)
        self.trees: list[Json | None] = [load(t) for t in self.texts]

    def frame(self, rng: random.Random, keep: float) -> str:
        """A seed unchanged (with probability ``keep``), mutated, or random text."""
        i = rng.randrange(len(self.texts))
        text = self.texts[i]
        roll = rng.random()
        if roll < keep:
            return text
        roll = (roll - keep) / (1 - keep)
        tree = self.trees[i]
        if roll < 0.5 and tree is not None:
            donor = self.trees[rng.randrange(len(self.trees))]
            mutated = mutate_structure(rng, tree, [] if donor is None else [donor])
            return dump(mutated, compact=rng.random() < 0.7, ascii_only=rng.random() < 0.7)
        if roll < 0.9:
            return mutate_texts(rng, text, self.texts)
        return "".join(rng.choice(_RANDOM_CHARS) for _ in range(rng.randrange(64)))


# -- one frame ------------------------------------------------------------------------


class _Connection:
    """A relay writing to ``os.devnull``, and the service's checker told the same frames."""

    def __init__(self, query: str) -> None:
        target = f"/v3/ws?{query}"
        self.writer = SessionWriter(os.devnull, Header(Request("/v3/ws", {})))
        self.relay = FrameRelay(self.writer, target=target)
        self.service: ClientChecker | None = ClientChecker()
        if self.service.receive_request(target) is not None:
            self.service = None
        self.frames = 0

    def close(self) -> None:
        self.relay.finish()
        self.writer.close()


def _check_server(conn: _Connection, frame: str | bytes) -> FrameOutcome:
    outcome = conn.relay.server_frame(frame, conn.frames / 50)
    if outcome.forward is not frame:
        raise Broken("a server frame not forwarded as received")
    if outcome.answer is not None:
        raise Broken("a server frame answered")
    return outcome


def _check_client(conn: _Connection, frame: str | bytes) -> FrameOutcome:
    service = conn.service
    expected: object = None
    if service is not None:
        expected = (
            service.receive_text(frame) if isinstance(frame, str) else service.receive_audio(frame)
        )
    outcome = conn.relay.client_frame(frame, conn.frames / 50)
    if isinstance(expected, Rejection):
        if outcome.forward is not None:
            raise Broken("a client frame the service refuses forwarded")
        if outcome.answer != expected:
            raise Broken("an answer that is not the service's")
    else:
        if outcome.forward is not frame:
            raise Broken("a client frame the service accepts not forwarded as received")
        if outcome.answer is not None:
            raise Broken("a client frame the service accepts answered")
    return outcome


def run(count: int, seed: int, *, found: dict[str, str] | None = None) -> dict[str, int]:
    """Feed ``count`` frames to relays; return how many times each outcome happened.

    Outcome names are documented in the module's docstring; anything else is
    ``UNDOCUMENTED <exception type>`` (``UNDOCUMENTED Broken: <property>`` for a
    property that does not hold). ``seed`` reproduces a run. ``found``, if given,
    gets the first input of each undocumented outcome, with its traceback.
    """
    rng = random.Random(seed)
    session_server, session_client = _session_texts()
    server = _Seeds([*_fixture_texts("server"), *session_server])
    client = _Seeds([*_fixture_texts("client"), *session_client])
    counts: Counter[str] = Counter()

    def query() -> str:
        return UNCHECKED_QUERY if rng.random() < 0.03 else rng.choice(QUERIES)

    conn = _Connection(query())
    try:
        for _ in range(count):
            if conn.relay.closed or conn.frames >= FRAMES_PER_RELAY:
                conn.close()
                conn = _Connection(query())
            side = "server" if rng.random() < 0.5 else "client"
            frame: str | bytes
            if rng.random() < (0.1 if side == "server" else 0.35):
                frame = b"\x00" * rng.choice((*_AUDIO_SIZES, rng.randrange(40_000)))
            else:
                # Mostly the side's own messages, sometimes the other side's.
                own, other = (server, client) if side == "server" else (client, server)
                seeds = own if rng.random() < 0.8 else other
                # A client's frames mostly valid: one the service refuses ends the relay.
                frame = seeds.frame(rng, keep=0.1 if side == "server" else 0.3)
            conn.frames += 1
            check: Callable[[_Connection, str | bytes], FrameOutcome] = (
                _check_server if side == "server" else _check_client
            )
            try:
                name = f"{side}: {check(conn, frame).name}"
            except Broken as exc:
                name = f"UNDOCUMENTED Broken: {exc.kind}"
            except Exception as exc:  # counted: the fuzzer's whole point
                name = f"UNDOCUMENTED {type(exc).__name__}"
            if found is not None and name.startswith("UNDOCUMENTED") and name not in found:
                found[name] = f"{side} frame {shorten(frame)}\n{traceback.format_exc()}"
            counts[name] += 1
    finally:
        conn.close()
    return dict(counts)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the target, print inputs/s and the outcome counts; 1 if anything undocumented."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    warnings.simplefilter("error")
    started = time.perf_counter()
    found: dict[str, str] = {}
    counts = run(args.count, args.seed, found=found)
    elapsed = time.perf_counter() - started
    print(
        f"recorder: {args.count} inputs in {elapsed:.1f} s "
        f"({args.count / elapsed:,.0f} inputs/s), seed {args.seed}"
    )
    width = max(map(len, counts), default=0)
    for name, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        print(f"  {name:<{width}}  {n:>7}")
    undocumented = sum(n for name, n in counts.items() if name.startswith("UNDOCUMENTED"))
    print(f"undocumented: {undocumented}")
    for name, example in found.items():
        print(f"\n{name}, first on: {example}")
    return 1 if undocumented else 0


if __name__ == "__main__":
    sys.exit(main())
