"""The fuzz targets: what each one feeds in, and what each of its checks calls.

A target draws inputs from seeds -- the shipped fixtures and a pool of examples
drawn once from ``aai_proto.strategies`` with Hypothesis -- passed on unchanged or
mutated (see ``_mutate``). Each check returns the name of a documented outcome
("accepted", "refused", ...), raises ``Broken`` when a documented property fails
(a loaded session does not load back equal), and lets anything else escape: the
runner counts that as an undocumented exception.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import attrs
import hypothesis
from _mutate import (
    Json,
    deep_nesting,
    dump,
    load,
    mutate_structure,
    mutate_texts,
    to_bytes,
)
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import aai_proto
import aai_replay
from aai_proto import strategies as aai_st

__all__ = ["TARGETS", "Broken", "Check", "Input", "Pool", "Target"]

ROOT: Final = Path(__file__).resolve().parents[1]
FIXTURES: Final = ROOT / "fixtures"

Input = str | bytes
Check = Callable[[Input], str]


class Broken(Exception):
    """A documented property that does not hold (not an exception the library raised)."""

    def __init__(self, kind: str, detail: str = "") -> None:
        self.kind = kind
        self.detail = detail
        super().__init__(f"{kind}: {detail}" if detail else kind)


# -- the pool of Hypothesis examples --------------------------------------------------


class Pool:
    """Examples drawn once from ``aai_proto.strategies``, by strategy name (cached).

    Strategy: ``strategy.example()`` is slow and not reproducible, so each strategy
    runs once under ``@given`` with ``max_examples`` and a fixed ``@seed``, and the
    test function collects what it is given. The text strategies build new
    strategies on each draw (about 30-60 ms an example), so their share is small;
    the value strategies are cheaper and give the bulk, dumped to text here.
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self._cache: dict[str, list[Any]] = {}

    def _collect(self, name: str, strategy: st.SearchStrategy[Any], count: int) -> list[Any]:
        found = self._cache.get(name)
        if found is not None:
            return found
        out: list[Any] = []

        @hypothesis.seed(self.seed * 1000 + len(self._cache))
        @settings(
            max_examples=max(1, count),
            database=None,
            phases=[Phase.generate],
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(strategy)
        def collect(value: Any) -> None:
            out.append(value)

        collect()
        self._cache[name] = out
        return out

    def server_texts(self) -> list[str]:
        """Server message texts: valid (with noise), malformed, and dumped events."""
        valid = self._collect("server_message_texts", aai_st.server_message_texts(), self.size)
        bad = self._collect(
            "malformed_server_message_texts", aai_st.malformed_server_message_texts(), self.size
        )
        events = self._collect("server_events", aai_st.server_events(), 4 * self.size)
        return [*valid, *bad, *map(aai_proto.dump_server_message, events)]

    def valid_server_texts(self) -> list[str]:
        valid = self._collect("server_message_texts", aai_st.server_message_texts(), self.size)
        events = self._collect("server_events", aai_st.server_events(), 4 * self.size)
        return [*valid, *map(aai_proto.dump_server_message, events)]

    def client_texts(self) -> list[str]:
        """Client message texts: valid (with noise), malformed, and dumped messages."""
        valid = self._collect("client_message_texts", aai_st.client_message_texts(), self.size)
        bad = self._collect(
            "malformed_client_message_texts",
            aai_st.malformed_client_message_texts(),
            2 * self.size,
        )
        messages = self._collect("client_messages", aai_st.client_messages(), 2 * self.size)
        return [*valid, *bad, *map(aai_proto.dump_client_message, messages)]

    def valid_client_texts(self) -> list[str]:
        messages = self._collect("client_messages", aai_st.client_messages(), 2 * self.size)
        return list(map(aai_proto.dump_client_message, messages))

    def params(self) -> list[aai_proto.StreamingParams]:
        found: list[aai_proto.StreamingParams] = self._collect(
            "streaming_params", aai_st.streaming_params(), 2 * self.size
        )
        return found


def _fixture_texts(folder: str) -> list[str]:
    return [p.read_text("utf-8") for p in sorted((FIXTURES / folder).glob("*.json*"))]


# -- the targets ----------------------------------------------------------------------


class Target:
    """A kind of input and the checks every input of that kind goes through."""

    name: str = ""
    # The longest input (characters, or bytes): past the 1 MiB a message parser may
    # take, and short enough that only a pathological input takes a parser 1 s.
    max_input: int = 3_000_000

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    @property
    def checks(self) -> Sequence[tuple[str, Check]]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Build the seeds (draws the Hypothesis pool on first use)."""

    def generate(self, rng: random.Random) -> Input:
        raise NotImplementedError


class _MessageTarget(Target):
    """JSON text frames: a seed unchanged, mutated as JSON, or mutated as text."""

    fixtures: str = ""

    def prepare(self) -> None:
        self.fixture_seeds = _fixture_texts(self.fixtures)
        self.pool_seeds = self.pool_texts()
        self.seeds = [*self.fixture_seeds, *self.pool_seeds]
        self._trees: dict[int, Json | None] = {}

    def pool_texts(self) -> list[str]:
        raise NotImplementedError

    def _tree(self, i: int) -> Json | None:
        if i not in self._trees:
            self._trees[i] = load(self.seeds[i])
        return self._trees[i]

    def generate_text(self, rng: random.Random) -> str:
        if rng.random() < 0.3:
            i = rng.randrange(len(self.fixture_seeds))
        else:
            i = len(self.fixture_seeds) + rng.randrange(len(self.pool_seeds))
        text = self.seeds[i]
        roll = rng.random()
        if roll < 0.08:
            return text
        tree = self._tree(i)
        if roll < 0.6 and tree is not None:
            donor = self._tree(rng.randrange(len(self.seeds)))
            mutated = mutate_structure(rng, tree, [] if donor is None else [donor])
            text = dump(mutated, compact=rng.random() < 0.7, ascii_only=rng.random() < 0.7)
            if rng.random() < 0.25:
                text = mutate_texts(rng, text, self.seeds, rounds=1)
            return text
        return mutate_texts(rng, text, self.seeds)

    def generate(self, rng: random.Random) -> Input:
        text = self.generate_text(rng)
        return to_bytes(rng, text) if rng.random() < 0.1 else text


def _refused_as(fn: Callable[[Input], object], error: type[Exception]) -> Check:
    def check(x: Input) -> str:
        try:
            fn(x)
        except error:
            return "refused"
        return "accepted"

    return check


_PARAMS: Final = aai_proto.StreamingParams(sample_rate=16000)
_BEGIN: Final = '{"type":"Begin","id":"00000000-0000-0000-0000-000000000000","expires_at":1}'


def _client_receive(x: Input) -> str:
    """A client in STREAMING (after Begin) takes the message: events, or ERROR for good."""
    client = aai_proto.Client(_PARAMS)
    client.receive_message(_BEGIN)
    try:
        client.receive_message(x)
    except aai_proto.RemoteProtocolError:
        if client.state is not aai_proto.State.ERROR:
            raise Broken(
                "state after RemoteProtocolError", f"{client.state} instead of ERROR"
            ) from None
        return "refused"
    return "events"


class ServerMessages(_MessageTarget):
    name = "server"
    fixtures = "messages/server"

    def pool_texts(self) -> list[str]:
        return self.pool.server_texts()

    @property
    def checks(self) -> Sequence[tuple[str, Check]]:
        out: list[tuple[str, Check]] = [
            (
                "parse_server_message",
                _refused_as(aai_proto.parse_server_message, aai_proto.RemoteProtocolError),
            ),
            ("Client.receive_message", _client_receive),
        ]
        # With msgspec installed, parse_server_message takes the accelerated path
        # first; the pure one (what `nox -s pure` runs) also gets every input.
        from aai_proto._wire import BACKENDS

        if "msgspec" in BACKENDS:
            pure = _refused_as(BACKENDS["json"], aai_proto.RemoteProtocolError)
            out.append(("parse_server_message[json backend]", pure))
        return out


def _checker_text(x: Input) -> str:
    checker = aai_proto.ClientChecker()
    if checker.receive_request("/v3/ws?sample_rate=16000") is not None:
        raise Broken("the checker rejected its fixed request")
    result = checker.receive_text(x)
    if isinstance(result, aai_proto.Rejection):
        return f"rejected {result.code}"
    if isinstance(result, aai_proto.Violation):
        return "violation"
    return "message"


class ClientMessages(_MessageTarget):
    name = "client"
    fixtures = "messages/client"

    def pool_texts(self) -> list[str]:
        return self.pool.client_texts()

    @property
    def checks(self) -> Sequence[tuple[str, Check]]:
        return [
            (
                "parse_client_message",
                _refused_as(aai_proto.parse_client_message, aai_proto.RemoteProtocolError),
            ),
            ("ClientChecker.receive_text", _checker_text),
        ]


# -- URLs -----------------------------------------------------------------------------

API_KEY: Final = "fuzz-api-key"
_BASES: Final = (
    aai_proto.DEFAULT_URL,
    "ws://127.0.0.1:8765/v3/ws",
    "/v3/ws",
    "",
    "wss://streaming.assemblyai.com/v3/ws?x_first=1",
    "wss://[::1]:443/v3/ws",
    "wss://user:pass@host:99999/v3/ws",
    "wss://streaming.assemblyai.com/v3/ws#frag",
)
_NAMES: Final = (
    *(a.name for a in attrs.fields(aai_proto.StreamingParams) if a.name != "extra"),
    "token",
    "x_custom",
    "",
    "Sample_Rate",
    "sample_rate ",
    "\ud800",
)
_INT_VALUES: Final = (
    "",
    "0",
    "-1",
    "+5",
    "16000",
    "0016000",
    "1" * 21,
    "9" * 5000,
    "1e3",
    "0x10",
    "1_000",
    " 1",
    "1 ",
    "\u0661\u0662",
    "16000.0",
)
_FLOAT_VALUES: Final = (
    "0.5",
    ".5",
    "5.",
    "1",
    "-0",
    "1e400",
    "-1e400",
    "1e-400",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "Infinity",
    "0x1p-2",
    "1" + "0" * 400,
    "0." + "0" * 5000 + "1",
    "1_0",
)
_BOOL_VALUES: Final = ("true", "false", "True", "FALSE", "1", "0", "yes", "", "null")
_LLM: Final = '{"model":"m","messages":[{"role":"user","content":"c"}],"max_tokens":5}'
_JSON_VALUES: Final = (
    "[]",
    '["a"]',
    '["a",1]',
    "[1]",
    '{"a":1}',
    "null",
    '"a"',
    "[" + ",".join(['"k"'] * 101) + "]",
    '["\\ud800"]',
    "[NaN]",
    "[1e400]",
    deep_nesting(3000),
    deep_nesting(1000),
    deep_nesting(3000, "object"),
    _LLM,
    _LLM.replace("5}", "0}"),
    _LLM.replace("5}", "1e400}"),
    _LLM.replace("5}", "1" + "0" * 400 + "}"),
    _LLM.replace("5}", '"5"}'),
    _LLM.replace("5}", "true}"),
    _LLM.replace('"m"', "null"),
    _LLM.replace('[{"role":"user","content":"c"}]', "{}"),
    _LLM.replace('[{"role":"user","content":"c"}]', "[[]]"),
    _LLM.replace('"role":"user",', ""),
    _LLM.replace('"user"', "1"),
    _LLM.replace(',"max_tokens":5', ""),
    '{"model":"m","messages":' + deep_nesting(3000) + ',"max_tokens":5}',
)
_RAW_QUERY_BITS: Final = (
    "%",
    "%G0",
    "%ED%A0%80",
    "%FF",
    "%C3",
    "%00",
    "\ud800",
    "\udcff",
    "&",
    "=",
    "==",
    ";",
    "#",
    "?",
    "[",
    "]",
    "\uff03",
    "+",
    "%2B",
    "%26",
    " ",
    "\n",
    "\x00",
)


_KINDS: Final = {
    a.name: str(a.metadata.get("kind", "")) for a in attrs.fields(aai_proto.StreamingParams)
}


def _value_for(rng: random.Random, name: str) -> str:
    kind = _KINDS.get(name, "")
    table = {
        "int": _INT_VALUES,
        "float": _FLOAT_VALUES,
        "bool": _BOOL_VALUES,
        "list": _JSON_VALUES,
        "object": _JSON_VALUES,
    }.get(kind)
    if table is None or rng.random() < 0.2:
        table = rng.choice((_INT_VALUES, _FLOAT_VALUES, _BOOL_VALUES, _JSON_VALUES))
    return rng.choice(table)


def _mutate_pairs(rng: random.Random, pairs: list[tuple[str, str]]) -> None:
    for _ in range(rng.choice((1, 1, 2, 3))):
        op = rng.randrange(9)
        if op <= 2 and pairs:
            i = rng.randrange(len(pairs))
            pairs[i] = (pairs[i][0], _value_for(rng, pairs[i][0]))
        elif op == 3:
            name = rng.choice(_NAMES)
            pairs.insert(rng.randint(0, len(pairs)), (name, _value_for(rng, name)))
        elif op == 4 and pairs:
            pairs.insert(rng.randint(0, len(pairs)), rng.choice(pairs))  # given twice
        elif op == 5 and pairs:
            del pairs[rng.randrange(len(pairs))]
        elif op == 6:
            token = rng.choice((API_KEY, "wrong", "", "\ud800", API_KEY + "\x00", "é" * 3))
            pairs.insert(rng.randint(0, len(pairs)), ("token", token))
        elif op == 7:
            pairs[:] = [(k, v) for k, v in pairs if k != "sample_rate"]
            pairs.append(("encoding", rng.choice(("opus", "pcm_mulaw", "pcm_s16le", "mp3", ""))))
        else:
            old, new = rng.choice(
                (
                    ("min_end_of_turn_silence_when_confident", "min_turn_silence"),
                    ("noise_suppression_model", "voice_focus"),
                    ("noise_suppression_threshold", "voice_focus_threshold"),
                )
            )
            pairs.append((old, _value_for(rng, new)))
            if rng.random() < 0.5:
                pairs.append((new, _value_for(rng, new)))


def _raw_query(rng: random.Random, pairs: list[tuple[str, str]]) -> str:
    """The pairs joined without percent-escaping (so that '&', '%' and '=' stay as they are)."""
    parts = [f"{k}={v}" if rng.random() < 0.95 else k for k, v in pairs]
    return "&".join(parts)


class Urls(Target):
    name = "url"

    def prepare(self) -> None:
        self.params = self.pool.params()
        self._built: dict[tuple[int, str, str | None], tuple[str, list[tuple[str, str]]]] = {}

    def _build(self, i: int, base: str, token: str | None) -> tuple[str, list[tuple[str, str]]]:
        """``build_url`` and its query's pairs, cached (they cost more than the checks)."""
        key = (i, base, token)
        if key not in self._built:
            url = aai_proto.build_url(self.params[i], base_url=base, token=token)
            self._built[key] = (url, parse_qsl(urlsplit(url).query, keep_blank_values=True))
        return self._built[key]

    def generate(self, rng: random.Random) -> Input:
        i = rng.randrange(len(self.params))
        token = rng.choice((None, None, API_KEY, "other-token"))
        url, built_pairs = self._build(i, rng.choice(_BASES), token)
        if rng.random() < 0.6:
            parts = urlsplit(url)
            pairs = list(built_pairs)
            _mutate_pairs(rng, pairs)
            query = (
                urlencode(pairs, errors="surrogatepass")
                if rng.random() < 0.5
                else _raw_query(rng, pairs)
            )
            url = urlunsplit(parts._replace(query=query))
        if rng.random() < 0.4:
            for _ in range(rng.choice((1, 1, 2))):
                i = rng.randint(0, len(url))
                if rng.random() < 0.5:
                    url = url[:i] + rng.choice(_RAW_QUERY_BITS) + url[i:]
                else:
                    url = mutate_texts(rng, url, rounds=1)
        if rng.random() < 0.3 and "?" in url:
            url = "/v3/ws" + url[url.index("?") :]  # a request target: path and query
        return url

    @property
    def checks(self) -> Sequence[tuple[str, Check]]:
        return [
            ("parse_url", _refused_as(_parse_url, aai_proto.InvalidParameter)),
            ("ClientChecker.receive_request", _checker_request(None)),
            ("ClientChecker(api_key).receive_request", _checker_request(API_KEY)),
        ]


def _parse_url(x: Input) -> object:
    assert isinstance(x, str)
    return aai_proto.parse_url(x)


def _checker_request(api_key: str | None) -> Check:
    def check(x: Input) -> str:
        assert isinstance(x, str)
        result = aai_proto.ClientChecker(api_key=api_key).receive_request(x)
        if result is None:
            return "accepted"
        if isinstance(result, aai_proto.Rejection):
            return f"rejected {result.code}"
        raise Broken("receive_request returned neither None nor a Rejection", repr(result))

    return check


# -- session files --------------------------------------------------------------------


class _SessionCheck:
    """``loads_session``, then (for what loads) the round trip through ``dumps_session``.

    The round trip reuses the session the first check loaded (a one-entry cache).
    """

    def __init__(self) -> None:
        self._last: tuple[str, aai_replay.RecordedSession] | None = None

    def loads(self, x: Input) -> str:
        assert isinstance(x, str)
        self._last = None
        try:
            session = aai_replay.loads_session(x)
        except aai_replay.SessionFormatError:
            return "refused"
        self._last = (x, session)
        return "accepted"

    def round_trip(self, x: Input) -> str:
        assert isinstance(x, str)
        if self._last is not None and self._last[0] is x:
            session = self._last[1]
        else:
            try:
                session = aai_replay.loads_session(x)
            except Exception:
                return "not loaded"
        try:
            text = aai_replay.dumps_session(session)
        except Exception as exc:
            raise Broken(f"dumps_session raised {type(exc).__name__}", str(exc)) from exc
        try:
            again = aai_replay.loads_session(text)
        except aai_replay.SessionFormatError as exc:
            raise Broken("the written text does not load", str(exc)) from exc
        except Exception as exc:
            raise Broken(f"loading the written text raised {type(exc).__name__}", str(exc)) from exc
        if again != session:
            raise Broken("the written text loads as another session")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            # write_session writes exactly these bytes: it would raise.
            raise Broken("the written text is not UTF-8 (write_session raises)", str(exc)) from exc
        return "ok"


def _session_lines(header: dict[str, Any], entries: list[dict[str, Any]], ascii_only: bool) -> str:
    lines = [json.dumps(header, ensure_ascii=ascii_only)]
    lines.extend(json.dumps(e, ensure_ascii=ascii_only) for e in entries)
    return "\n".join(lines)


class _SessionTarget(Target):
    """Session files: the shipped ones, and ones made from the Hypothesis pool."""

    # loads_session reads about 2.5 MB/s (linear in the size): 1 MB loads and
    # round-trips in about half a second.
    max_input = 1_000_000

    def prepare(self) -> None:
        self.fixture_files = [
            p.read_text("utf-8").rstrip("\n").split("\n")
            for p in sorted((FIXTURES / "sessions").glob("*.jsonl"))
        ]
        self._server = [json.loads(t) for t in self.pool.valid_server_texts()]
        self._client = [json.loads(t) for t in self.pool.valid_client_texts()]
        self._raw = self.pool.server_texts()
        self._queries = [
            dict(parse_qsl(urlsplit(aai_proto.build_url(p)).query)) for p in self.pool.params()
        ]
        self.check = _SessionCheck()
        rng = random.Random(f"{self.pool.seed}/sessions")
        self.made_files = [self._made(rng).split("\n") for _ in range(max(20, self.pool.size))]

    def _made(self, rng: random.Random) -> str:
        header: dict[str, Any] = {
            "aai_session": 1,
            "request": {"path": "/v3/ws", "query": rng.choice(self._queries)},
        }
        if rng.random() < 0.5:
            header["source"] = rng.choice(("recorded", "synthesized", "handwritten"))
        if rng.random() < 0.3:
            header["description"] = rng.choice(self._raw)[:80]
        if rng.random() < 0.3:
            header["x_extra"] = rng.choice(self._server)
        t = 0.0
        entries: list[dict[str, Any]] = []
        for _ in range(rng.randint(0, 12)):
            t = round(t + rng.choice((0.0, 0.05, 0.123, 1.0)), 3)
            kind = rng.randrange(4)
            if kind == 0:
                entries.append({"t": t, "server": rng.choice(self._server)})
            elif kind == 1:
                entries.append({"t": t, "server_raw": rng.choice(self._raw)})
            elif kind == 2:
                entries.append({"t": t, "client": rng.choice(self._client)})
            else:
                entries.append({"t": t, "client_audio": rng.choice((0, 1600, 3200))})
        if rng.random() < 0.5:
            close = {"code": rng.choice((1000, 3005, 4999)), "reason": "", "by": "server"}
            entries.append({"t": t, "close": close})
        return _session_lines(header, entries, ascii_only=rng.random() < 0.5)

    def seed_lines(self, rng: random.Random) -> list[str]:
        """A seed file as its lines: often only its first lines (a shorter file loads faster)."""
        lines = rng.choice(self.fixture_files if rng.random() < 0.7 else self.made_files)
        if rng.random() < 0.9:
            return lines[: rng.randint(1, 16)]
        return list(lines)

    def mutate_line(self, rng: random.Random, line: str, others: Sequence[str]) -> str:
        roll = rng.random()
        tree = load(line) if roll < 0.65 else None
        if tree is not None:
            return dump(mutate_structure(rng, tree), compact=rng.random() < 0.3)
        if roll < 0.7:
            return rng.choice(("", " ", line + "\r", json.dumps(line), "{}", "[]", "null"))
        return mutate_texts(rng, line, others)

    @property
    def checks(self) -> Sequence[tuple[str, Check]]:
        return [
            ("loads_session", self.check.loads),
            ("dumps_session round trip", self.check.round_trip),
        ]


class SessionLines(_SessionTarget):
    name = "session-lines"

    def generate(self, rng: random.Random) -> Input:
        lines = self.seed_lines(rng)
        i = 0 if rng.random() < 0.2 or len(lines) == 1 else rng.randrange(1, len(lines))
        lines[i] = self.mutate_line(rng, lines[i], lines)
        text = "\n".join(lines)
        return text + "\n" if rng.random() < 0.95 else text


class SessionFiles(_SessionTarget):
    name = "session-files"

    def generate(self, rng: random.Random) -> Input:
        lines = self.seed_lines(rng)
        for _ in range(rng.choice((1, 2, 3, 4))):
            op = rng.randrange(8)
            i = rng.randrange(len(lines)) if lines else 0
            if op <= 1 and lines:
                lines[i] = self.mutate_line(rng, lines[i], lines)
            elif op == 2 and lines:
                del lines[i]
            elif op == 3 and lines:
                lines.insert(rng.randint(0, len(lines)), rng.choice(lines))
            elif op == 4 and len(lines) > 1:
                j = rng.randrange(len(lines))
                lines[i], lines[j] = lines[j], lines[i]
            elif op == 5 and lines:
                other = self.seed_lines(rng)
                lines[i:] = other[rng.randrange(len(other)) :]
            elif op == 6:
                lines.insert(rng.randint(0, len(lines)), rng.choice(("", " ", "\r", "\ufeff")))
            else:
                lines = mutate_texts(rng, "\n".join(lines), rounds=1).split("\n")
        text = "\n".join(lines)
        roll = rng.random()
        if roll < 0.05:
            text = text.replace("\n", "\r\n")
        elif roll < 0.08:
            text = "\ufeff" + text
        elif roll < 0.12:
            text = mutate_texts(rng, text)
        return text + "\n" if rng.random() < 0.9 else text


TARGETS: Final[tuple[type[Target], ...]] = (
    ServerMessages,
    ClientMessages,
    Urls,
    SessionLines,
    SessionFiles,
)
