"""B4: concurrency, the lateness of the replay server's messages under N real-time clients.

One ``aai-replay serve`` process (audio pacing) serves a session built here; another
process runs N clients, each streaming its audio in real time in 50 ms frames
through ``aai_proto.trio``. The server writes, per message, when its gates opened
and when it was sent (``--timing-log``, off by default); lateness is the
difference. The figure per N is the p99 lateness over every message of every
client; N grows until the target fails, and the largest N that holds is reported.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from _common import replay_server, row, stop, temp_dir, write_bench_session

HERE = Path(__file__).resolve().parent
TARGET_MS = 50.0


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def measure(directory: Path, session: Path, n: int, seconds: float) -> dict[str, Any]:
    log = directory / f"timing-{n}.log"
    with replay_server(session, "--timing-log", str(log)) as (_, url):
        clients = subprocess.Popen(
            [sys.executable, str(HERE / "_realtime_clients.py"), url, str(n), str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            out, _ = clients.communicate(timeout=seconds + 120)
        finally:
            stop(clients, graceful=False)
        if clients.returncode != 0:
            raise RuntimeError(f"the clients failed with status {clients.returncode}")
    # The server has stopped: its log is complete.
    lateness = []
    for line in log.read_text().splitlines():
        _, opened, sent = line.split()
        lateness.append((float(sent) - float(opened)) * 1000)
    report = json.loads(out)
    return {
        "n": n,
        "messages": len(lateness),
        "p50_ms": statistics.median(lateness),
        "p99_ms": p99(lateness),
        "max_ms": max(lateness),
        "ended": report["ended"],
        "client_slip_ms": report["client_slip_max"] * 1000,
    }


def run(*, quick: bool = False) -> dict[str, Any]:
    if quick:
        seconds, counts = 2.0, [3]
    else:
        seconds, counts = 30.0, [50, 100, 200, 300, 400, 600]
    runs: list[dict[str, Any]] = []
    with temp_dir() as directory:
        session = write_bench_session(directory, seconds)
        for n in counts:
            result = measure(directory, session, n, seconds)
            runs.append(result)
            if result["p99_ms"] > TARGET_MS or result["ended"] < n:
                break
    rows = []
    held = [r["n"] for r in runs if r["p99_ms"] <= TARGET_MS and r["ended"] == r["n"]]
    for r in runs:
        rows.append(
            row(
                f"p99 lateness, N = {r['n']} clients",
                r["p99_ms"],
                "ms",
                f"<= {TARGET_MS:g} ms" + (" at N = 200" if r["n"] == 200 else ""),
                r["p99_ms"] <= TARGET_MS and r["ended"] == r["n"],
            )
        )
    largest = max(held, default=0)
    rows.append(
        row(
            "largest N that holds p99 <= 50 ms",
            largest,
            "clients",
            ">= 200" if not quick else "-",
            largest >= 200 if not quick else None,
        )
    )
    detail = "; ".join(
        f"N={r['n']}: {r['messages']} msgs, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
        f"max {r['max_ms']:.1f} ms, {r['ended']}/{r['n']} ended with Termination, "
        f"client-side pacing slip <= {r['client_slip_ms']:.0f} ms"
        for r in runs
    )
    return {
        "id": "B4",
        "title": "concurrency: server lateness under N real-time clients",
        "rows": rows,
        "notes": f"{seconds:g} s of audio per client, 50 ms frames, clients in one process "
        f"started over 1 s, server in another: {detail}",
    }
