"""B5: memory of the replay server and of a client over a 3-hour session.

``aai-replay serve`` (audio pacing, the default) serves a 3-hour session built here;
a client process streams 3 hours of tone through ``aai_proto.trio`` as fast as the
server takes it, consuming every event. At marks of streamed audio (10 min, 1 h,
2 h, 3 h) the client samples its own RSS and the server's (``VmRSS`` in
``/proc/PID/status``). Growth is measured from the 10-minute mark, so start-up and
the loaded session don't count; "constant in session length" is checked by comparing
the growth per hour over the first hour with that over the last two.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from _common import replay_server, row, stop, temp_dir, write_bench_session

HERE = Path(__file__).resolve().parent
LIMIT_MB = 20.0


def _span(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


def run(*, quick: bool = False) -> dict[str, Any]:
    if quick:
        seconds, marks = 60, [10, 30, 60]
    else:
        seconds, marks = 3 * 3600, [600, 3600, 7200, 10800]
    with temp_dir() as directory:
        session = write_bench_session(directory, seconds, audio_frame_ms=1000)
        with replay_server(session) as (server, url):
            client = subprocess.Popen(
                [
                    sys.executable,
                    str(HERE / "_stream_client.py"),
                    url,
                    str(seconds),
                    str(server.pid),
                    *map(str, marks),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                out, _ = client.communicate(timeout=600)
            finally:
                stop(client, graceful=False)
            if client.returncode != 0:
                raise RuntimeError(f"the client failed with status {client.returncode}")
    samples = [json.loads(line) for line in out.splitlines()]
    assert [s["audio_s"] for s in samples] == marks, samples
    rows = []
    first, second, last = samples[0], samples[1], samples[-1]
    hours = f"{(last['audio_s'] - first['audio_s']) / 3600:.2g} h"
    for who in ("server", "client"):
        key = f"{who}_mb"
        growth = last[key] - first[key]
        early = (second[key] - first[key]) / (second["audio_s"] - first["audio_s"]) * 3600
        late = (last[key] - second[key]) / (last["audio_s"] - second["audio_s"]) * 3600
        rows.append(
            row(
                f"{who} RSS growth, {_span(marks[0])} -> {_span(seconds)} of audio",
                growth,
                "MB",
                f"<= {LIMIT_MB:g} MB",
                growth <= LIMIT_MB,
            )
        )
        rows.append(
            row(
                f"  {who} growth rate, {_span(second['audio_s'])} -> {_span(last['audio_s'])} "
                f"(before: {early:.2f} MB/h)",
                late,
                "MB/h",
                "constant: <= 1 MB/h",
                late <= 1.0,
            )
        )
    trace = ", ".join(
        f"{_span(s['audio_s'])}: server {s['server_mb']:.1f} MB, client {s['client_mb']:.1f} MB"
        for s in samples
    )
    return {
        "id": "B5",
        "title": "memory over a long session",
        "rows": rows,
        "notes": f"RSS at marks of streamed audio ({hours} measured): {trace}",
    }
