"""B6: what one client costs, in CPU time, to stream a 10-minute session.

A 10-minute session is served by ``aai-replay serve`` in its own process on
127.0.0.1; each client streams its WAV file as fast as the server takes it,
consumes every event and ends the session (terminate, Termination). Each run is a
process of its own and measures its own CPU time (all threads) from the connect to
the end, so interpreter start and imports are left out. Clients: ``aai_proto.trio``,
``aai_proto.asyncio`` and the official SDK's sync client, interleaved, medians of
several runs. Targets: asyncio <= 0.5x the SDK, trio <= 1.0x the SDK.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from _common import replay_server, row, temp_dir, write_bench_session
from b3_replay import write_wav

HERE = Path(__file__).resolve().parent
KINDS = ("sdk", "trio", "asyncio")
TARGETS = {"trio": 1.0, "asyncio": 0.5}


def one(kind: str, url: str, wav: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(HERE / "_b6_client.py"), kind, url, str(wav)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"the {kind} client failed: {out.stderr.strip()[-500:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run(*, quick: bool = False) -> dict[str, Any]:
    seconds = 20.0 if quick else 600.0
    repeats = 1 if quick else 9  # a busy 2-CPU machine swings one run by 20%
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    with temp_dir() as directory:
        session = write_bench_session(directory, seconds)
        wav = directory / "audio.wav"
        write_wav(wav, seconds)
        with replay_server(session) as (_, url):
            for _ in range(repeats):
                for kind in KINDS:  # interleaved: drift in the machine hits all alike
                    runs[kind].append(one(kind, url, wav))
    cpu = {kind: statistics.median(r["cpu_s"] for r in runs[kind]) for kind in KINDS}
    events = {kind: runs[kind][0]["events"] for kind in KINDS}
    sdk = cpu["sdk"]
    rows = [
        row(f"official SDK (sync client), {seconds / 60:g}-min session", sdk, "s CPU", "-", None)
    ]
    for kind in ("trio", "asyncio"):
        ratio = cpu[kind] / sdk
        target = TARGETS[kind]
        rows.append(
            row(
                f"aai_proto.{kind}",
                cpu[kind],
                "s CPU",
                f"<= {target:g}x the SDK",
                ratio <= target,
                baseline=sdk,
                baseline_name="the official SDK",
            )
        )
    return {
        "id": "B6",
        "title": "client cost: CPU time to stream a session",
        "rows": rows,
        "notes": (
            f"each client in its own process against aai-replay serve (another process), "
            f"127.0.0.1, as fast as the server takes it, every event consumed; CPU time of "
            f"the client process from connect to the end, median of {repeats}; events per "
            f"session: {events}"
        ),
    }
