"""Stream a WAV file to AssemblyAI with asyncio and `websockets`, printing final transcripts.

The same sans-IO core that ``aai_proto.trio`` drives, embedded in another runtime: the
core decides everything about the protocol (state, frame sizes, parsing); this file only
moves messages between it and the socket, and keeps time. Usage::

    ASSEMBLYAI_API_KEY=... python examples/asyncio_client.py speech.wav [--url URL] [--fast]

The file must be mono 16-bit PCM; its sample rate is sent as ``sample_rate``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import wave

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

import aai_proto as aai

TERMINATE_TIMEOUT = 5.0  # seconds to wait for Termination once Terminate is sent


async def flush(ws: ClientConnection, client: aai.Client) -> None:
    """Send what the core has queued: bytes as binary frames, str as text frames."""
    for frame in client.data_to_send():
        await ws.send(frame)


async def send_file(
    ws: ClientConnection, client: aai.Client, wav: wave.Wave_read, realtime: bool
) -> None:
    """Feed the file to the core 50 ms at a time, then terminate (audio tail + Terminate)."""
    loop = asyncio.get_running_loop()
    rate, start, sent = wav.getframerate(), loop.time(), 0
    try:
        while data := wav.readframes(rate // 20):
            client.send_audio(data)  # the core cuts frames; we only send them
            await flush(ws, client)
            sent += len(data) // 2
            if realtime:  # no faster than the audio plays, as from a microphone
                await asyncio.sleep(start + sent / rate - loop.time())
        client.terminate()
        await flush(ws, client)
    except ConnectionClosed:
        pass  # the receiver reports why the connection closed


async def receive(ws: ClientConnection, client: aai.Client) -> aai.Termination | None:
    """Hand each message to the core and act on its events, until Termination or the close."""
    tracker = aai.TurnTracker(format_turns=bool(client.params.format_turns))
    try:
        async for message in ws:
            for event in client.receive_message(message):
                if isinstance(event, aai.Turn):
                    update = tracker.update(event)
                    if update is not None and update.is_final:
                        print(update.transcript, flush=True)
                elif isinstance(event, aai.Termination):
                    return event
    except ConnectionClosed:
        pass  # ws.close_code tells how; the core says what it means below
    # The core turns the close into an event; its error is a StreamingError
    # carrying the server's Error message, if one came before the close.
    [closed] = client.connection_closed(ws.close_code or 1006, ws.close_reason or "")
    if closed.error is not None:
        raise closed.error
    return None


async def stream(
    path: str, *, url: str, api_key: str | None, realtime: bool
) -> aai.Termination | None:
    """Stream one WAV file; return the server's Termination (None if none came in time)."""
    with wave.open(path, "rb") as wav:
        if (wav.getnchannels(), wav.getsampwidth()) != (1, 2):
            raise ValueError(f"{path}: only mono 16-bit PCM WAV files can be streamed")
        params = aai.StreamingParams(sample_rate=wav.getframerate(), format_turns=True)
        client = aai.Client(params)
        async with connect(
            aai.build_url(params, base_url=url),
            additional_headers=aai.build_headers(api_key=api_key),
            user_agent_header=None,  # build_headers has the User-Agent
        ) as ws:
            sender = asyncio.create_task(send_file(ws, client, wav, realtime))
            receiver = asyncio.create_task(receive(ws, client))
            try:
                await asyncio.wait([sender, receiver], return_when=asyncio.FIRST_COMPLETED)
                if not receiver.done():
                    sender.result()  # a local failure (a bad read) ends here
                    # Audio and Terminate are out: give the server a while to finish.
                    await asyncio.wait([receiver], timeout=TERMINATE_TIMEOUT)
                return receiver.result() if receiver.done() else None
            finally:
                sender.cancel()
                receiver.cancel()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("audio", help="a mono 16-bit PCM WAV file")
    parser.add_argument("--url", default=aai.DEFAULT_URL)
    parser.add_argument("--fast", action="store_true", help="don't pace the audio in real time")
    args = parser.parse_args(argv)
    api_key = os.environ.get("ASSEMBLYAI_API_KEY")
    try:
        termination = asyncio.run(
            stream(args.audio, url=args.url, api_key=api_key, realtime=not args.fast)
        )
    except (aai.StreamingError, aai.ProtocolError, WebSocketException, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)  # never the key: it is in no message
        return 1
    if termination is None:
        print("error: no Termination from the server", file=sys.stderr)
        return 1
    print(f"[{termination.audio_duration_seconds} s of audio]", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
