"""A client process for B5: stream SECONDS of tone through aai_proto.trio as fast as possible.

``python bench/_stream_client.py URL SECONDS SERVER_PID MARK...`` prints one JSON
line per mark (seconds of audio sent): this process's RSS and the server's, in MB.
Audio is generated a second at a time, never held whole; every event is consumed.
"""

from __future__ import annotations

import json
import sys

import trio
from _common import BYTES_PER_SECOND, SAMPLE_RATE, rss_mb, tone

from aai_proto import StreamingParams, Termination
from aai_proto.trio import open_session


async def main(url: str, seconds: int, server_pid: int, marks: list[int]) -> None:
    params = StreamingParams(sample_rate=SAMPLE_RATE, format_turns=True)
    second = tone(BYTES_PER_SECOND)
    ended = False
    async with open_session(params, url=url) as session, trio.open_nursery() as nursery:

        async def send() -> None:
            for t in range(1, seconds + 1):
                await session.send_audio(second)
                if t in marks:
                    await trio.sleep(0.05)  # let the server catch up before sampling
                    mark = {"audio_s": t, "client_mb": rss_mb(), "server_mb": rss_mb(server_pid)}
                    print(json.dumps(mark), flush=True)
            await session.terminate()

        nursery.start_soon(send)
        async for event in session:
            ended = isinstance(event, Termination)
    if not ended:
        raise SystemExit("the session did not end with Termination")


if __name__ == "__main__":
    url, seconds, pid, *marks = sys.argv[1:]
    trio.run(main, url, int(seconds), int(pid), [int(m) for m in marks])
