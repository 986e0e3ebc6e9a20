"""Helpers the benchmarks share: sessions built on the fly, server processes, RSS, rows.

Nothing here is committed data: sessions are built in a temporary directory at bench
time, servers listen on 127.0.0.1 port 0 and are always stopped (killed on error).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aai_proto import Begin, Termination, Turn, Word, dump_server_message
from aai_replay import (
    ClientAudio,
    ClientMessage,
    Close,
    Header,
    RecordedSession,
    Request,
    ServerMessage,
    write_session,
)

SAMPLE_RATE = 16000
BYTES_PER_SECOND = SAMPLE_RATE * 2  # pcm_s16le, mono
FRAME_BYTES = 1600  # 50 ms
WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "seven",
    "bakers",
    "sing",
]
HERE = Path(__file__).resolve().parent


def row(
    name: str,
    value: float,
    unit: str,
    target: str,
    met: bool | None,
    *,
    baseline: float | None = None,
    baseline_name: str | None = None,
) -> dict[str, Any]:
    """One row of a result; the ratio is value / baseline when there is a baseline."""
    return {
        "name": name,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "baseline_name": baseline_name,
        "ratio": value / baseline if baseline else None,
        "target": target,
        "met": met,
    }


def _message(event: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(dump_server_message(event))
    return data


def build_session(seconds: float, *, audio_frame_ms: int = 50) -> RecordedSession:
    """A plausible classic Universal-Streaming session over ``seconds`` of audio.

    Every 3.5 s of audio is one turn of six words spoken over 2.5 s: a partial
    ``Turn`` per word, the unformatted end of turn, then the formatted copy
    (``format_turns=true``), each gated on the audio it depends on; then
    ``Terminate``, ``Termination`` and the close. The client's audio is recorded in
    frames of ``audio_frame_ms`` (the gates count bytes, so a live client may send
    any legal frame size).
    """
    entries: list[Any] = []
    frame = BYTES_PER_SECOND * audio_frame_ms // 1000
    total = int(seconds * BYTES_PER_SECOND) // 2 * 2
    sent = 0
    t = 0.0

    def audio_until(ms: float) -> None:
        nonlocal sent, t
        goal = min(total, int(ms * BYTES_PER_SECOND / 1000) // frame * frame)
        while sent < goal:
            n = min(frame, total - sent)
            sent += n
            t = sent / BYTES_PER_SECOND
            entries.append(ClientAudio(round(t, 3), n))

    entries.append(ServerMessage(0.0, _message(Begin(id="bench", expires_at=1764000000))))
    order = 0
    turn_ms = 3500
    while (order + 1) * turn_ms <= seconds * 1000:
        start = order * turn_ms
        words: list[Word] = []
        for i, text in enumerate(WORDS[order % 7 : order % 7 + 6]):
            w0 = start + 400 * i
            audio_until(w0 + 400)
            words.append(
                Word(start=w0, end=w0 + 350, text=text, confidence=0.9, word_is_final=True)
            )
            partial = Turn(
                turn_order=order,
                turn_is_formatted=False,
                end_of_turn=False,
                transcript=" ".join(w.text for w in words[:-1]),
                end_of_turn_confidence=0.1,
                words=(*words[:-1], attrs_replace_final(words[-1])),
            )
            entries.append(ServerMessage(round(t, 3), _message(partial)))
        audio_until(start + 2400 + 400)
        plain = " ".join(w.text for w in words)
        for formatted in (False, True):
            text = plain.capitalize() + "." if formatted else plain
            end = Turn(
                turn_order=order,
                turn_is_formatted=formatted,
                end_of_turn=True,
                transcript=text,
                end_of_turn_confidence=0.9,
                words=tuple(words),
            )
            entries.append(ServerMessage(round(t, 3), _message(end)))
        order += 1
    audio_until(seconds * 1000 + 1000)
    entries.append(ClientMessage(round(t, 3), {"type": "Terminate"}))
    done = Termination(
        audio_duration_seconds=round(seconds), session_duration_seconds=round(seconds) + 1
    )
    entries.append(ServerMessage(round(t + 0.3, 3), _message(done)))
    entries.append(Close(round(t + 0.35, 3), 1000, "Session Ended", "server"))
    query = {"sample_rate": str(SAMPLE_RATE), "encoding": "pcm_s16le", "format_turns": "true"}
    header = Header(Request("/v3/ws", query), source="synthesized", description="benchmark")
    return RecordedSession(header, entries)


def attrs_replace_final(word: Word) -> Word:
    """The newest word of a partial: not final yet."""
    import attrs

    return attrs.evolve(word, word_is_final=False)


def tone(nbytes: int) -> bytes:
    """``nbytes`` of a 16 kHz square-ish tone (not silence: nothing may take a shortcut)."""
    period = bytes(range(0, 64, 2)) + bytes(range(64, 0, -2))
    return (period * (nbytes // len(period) + 1))[:nbytes]


@contextlib.contextmanager
def temp_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="aai-bench-") as name:
        yield Path(name)


def write_bench_session(directory: Path, seconds: float, **options: Any) -> Path:
    path = directory / f"session-{int(seconds)}s.jsonl"
    write_session(build_session(seconds, **options), path)
    return path


def _aai_replay() -> list[str]:
    script = Path(sys.executable).with_name("aai-replay")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from aai_replay._cli import main; main()"]


@contextlib.contextmanager
def replay_server(session: Path, *args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``aai-replay serve SESSION`` on 127.0.0.1 port 0, in its own process: yields it and its URL.

    Stopped with SIGINT when the block ends (killed after 10 s, or at once on error).
    """
    proc = subprocess.Popen(
        [*_aai_replay(), "serve", str(session), "--host", "127.0.0.1", "--port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    ok = False
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("ws://127.0.0.1:"):
            raise RuntimeError(f"aai-replay serve did not start: {url!r}")
        yield proc, url
        ok = True
    finally:
        stop(proc, graceful=ok)


def stop(proc: subprocess.Popen[Any], *, graceful: bool = True) -> None:
    """Stop a process we started: SIGINT and up to 10 s, then SIGKILL."""
    if proc.poll() is None:
        if graceful:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        else:
            proc.kill()
    proc.wait()
    for stream in (proc.stdout, proc.stderr, proc.stdin):
        if stream is not None:
            stream.close()


def rss_mb(pid: int | None = None) -> float:
    """Resident set size of a process (this one by default), in MB, from /proc."""
    where = f"/proc/{pid if pid is not None else 'self'}/status"
    for line in Path(where).read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS in {where}")


def python_script(code_path: Path, *args: str) -> list[str]:
    return [sys.executable, str(code_path), *args]


def env() -> dict[str, str]:
    return dict(os.environ)
