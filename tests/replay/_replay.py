"""What the tests of the sans-IO replay share: a replay with fixed ids, and what it sent."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from aai_proto import StreamingParams
from aai_replay import Action, RecordedSession, Replay, ReplayPlan, Send

PARAMS = StreamingParams(sample_rate=16000)
SESSION_ID = "live-id"
NOW_UNIX = 1_800_000_000.9
BEGIN_LIVE = {"type": "Begin", "id": SESSION_ID, "expires_at": 1_800_000_000 + 3 * 3600}


def sent(actions: Sequence[Action]) -> list[Any]:
    """Sends as parsed JSON (or the raw text); closes and aborts as they are."""
    out: list[Any] = []
    for action in actions:
        if isinstance(action, Send) and isinstance(action.data, str):
            try:
                out.append(json.loads(action.data))
            except ValueError:
                out.append(action.data)
        else:
            out.append(action)
    return out


def replay(session: RecordedSession, params: StreamingParams = PARAMS, **options: Any) -> Replay:
    """A replay of ``session`` whose Begin gets ``SESSION_ID`` and expires 3 h after NOW_UNIX."""
    options.setdefault("session_id", SESSION_ID)
    options.setdefault("now_unix", NOW_UNIX)
    return Replay(ReplayPlan(session), params, **options)
