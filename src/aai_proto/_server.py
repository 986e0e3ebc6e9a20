"""The checks a server makes of a client's connection, without I/O.

Strategy: the service answers a client that breaks a rule with an ``Error``
message and a close whose code equals the message's ``error_code`` (1008, 3006,
3007). ``ClientChecker`` takes what a client sends -- its request, each binary
frame, each text frame -- and returns either what was accepted or a
:class:`Rejection`, the value that says what to send before closing. A client's
bad data is a result here, never an exception: exceptions are for a server that
misuses the checker.

What a client may send when is not a second set of rules: the checker walks the
client's own transition table (:data:`TRANSITIONS`, the one :class:`Client`
obeys) with each input the client sends, and an input the table does not allow
is a :class:`Violation`. The server's messages are not fed in, and need not be:
in that table the states a server message moves between (``CONNECTING`` and
``STREAMING``; ``TERMINATING_EARLY``, ``TERMINATING`` and ``TERMINATED``) allow
the same client inputs, which a test holds the table to.
"""

from __future__ import annotations

import hmac
import json
from typing import ClassVar, Final, final
from urllib.parse import parse_qsl, urlsplit

import attrs

from ._audio import MAX_CHUNK_MS, MIN_CHUNK_MS, AudioFormat
from ._client import _AUDIO_STATES, TRANSITIONS, Input, State
from ._errors import LocalProtocolError, RemoteProtocolError
from ._events import ServerError
from ._messages import ClientMessage, ForceEndpoint, KeepAlive, Terminate, UpdateConfiguration
from ._params import InvalidParameter, StreamingParams, parse_url
from ._wire import MAX_MESSAGE_BYTES, MAX_NESTING_DEPTH, _limit, parse_client_message

__all__ = ["SHORT_FRAME_LIMIT", "ClientChecker", "Rejection", "Violation"]

SHORT_FRAME_LIMIT: Final = 50
"""How many frames shorter than 50 ms in a row a server takes (1 s of 20 ms frames)."""
# ... and how much audio such a run may hold, in ms: "about a second" either way.
_SHORT_RUN_MS: Final = 1000.0


@final
@attrs.frozen(kw_only=True)
class Rejection:
    """A rule the client broke: send :attr:`message`, then close with ``code`` and :attr:`reason`.

    ``error`` is the text of the ``Error`` message; it never holds a credential.
    """

    reason: ClassVar[str] = "See Error message for details"
    """The close reason the service gives after an ``Error`` message."""

    code: int
    error: str

    @property
    def message(self) -> str:
        """The ``Error`` text frame: ``{"type":"Error","error_code":N,"error":"..."}``."""
        return json.dumps(
            {"type": "Error", "error_code": self.code, "error": self.error},
            separators=(",", ":"),
        )

    @property
    def event(self) -> ServerError:
        """The ``Error`` message as the event a client parses it to."""
        return ServerError(error_code=self.code, error=self.error)


@final
@attrs.frozen(kw_only=True)
class Violation:
    """The client sent something its lifecycle forbids at that point (audio after ``Terminate``).

    The service's answer to this is not documented, so it is a finding, not a close
    code: the checker goes on, and the server decides (a lenient replay records it, a
    strict one closes). ``rule`` says what was broken, in words; ``message`` is the
    client message that broke it (``None`` for audio).
    """

    rule: str
    message: ClientMessage | None = None


# Each client input as the table names it, and in words.
_INPUTS: Final = {
    Terminate.type: Input.TERMINATE,
    ForceEndpoint.type: Input.FORCE_ENDPOINT,
    KeepAlive.type: Input.KEEP_ALIVE,
    UpdateConfiguration.type: Input.UPDATE_CONFIGURATION,
}
_WORDS: Final = {
    Input.SEND_AUDIO: "audio",
    Input.TERMINATE: "Terminate",
    Input.FORCE_ENDPOINT: "ForceEndpoint",
    Input.KEEP_ALIVE: "KeepAlive",
    Input.UPDATE_CONFIGURATION: "UpdateConfiguration",
}


def _duration_text(ms: float) -> str:
    return f"{ms:.6g}"


@final
class ClientChecker:
    """Checks one client connection as AssemblyAI's server does.

    Call :meth:`receive_request` once, with the request target (path and query)
    and the ``Authorization`` header; then :meth:`receive_audio` for each binary
    frame and :meth:`receive_text` for each text frame. Each returns a
    :class:`Rejection` when the client broke a rule:

    - 1008 when ``api_key`` is set and neither the ``Authorization`` header nor
      the ``token`` query parameter holds it;
    - 3006 for an invalid value of a known parameter, and for a text frame that
      is not a valid client message (longer than ``max_message_bytes`` or nested
      deeper than ``max_nesting_depth`` included: see :func:`parse_client_message`);
    - 3007 for a frame longer than 1000 ms, or for sustained frames shorter than
      50 ms: the frame that makes a run of them ``SHORT_FRAME_LIMIT`` frames or
      1000 ms long (one short frame, such as the last before ``Terminate``, is
      fine). Durations are checked for PCM encodings only.

    They return a :class:`Violation` when the client sends what its lifecycle
    forbids: audio or any control message after ``Terminate``, or a second
    ``Terminate``. A violating frame is not counted, and the checker goes on.

    After a rejection the checker is done: every later call raises
    :class:`LocalProtocolError`, as does any call before :meth:`receive_request`.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        max_nesting_depth: int = MAX_NESTING_DEPTH,
    ) -> None:
        if api_key is not None and (type(api_key) is not str or not api_key):
            raise ValueError("api_key must be a non-empty string")
        self._max_bytes = _limit("max_message_bytes", max_message_bytes)
        self._max_depth = _limit("max_nesting_depth", max_nesting_depth)
        self._api_key = api_key
        self._params: StreamingParams | None = None
        self._format: AudioFormat | None = None
        self._rejection: Rejection | None = None
        self._requested = False
        self._short_run = 0
        self._short_run_ms = 0.0
        self._state = State.CONNECTING
        self.audio_bytes = 0
        """Bytes of audio received in accepted frames."""
        self.audio_ms = 0.0
        """Milliseconds of audio received in accepted frames (0 for compressed encodings)."""

    @property
    def params(self) -> StreamingParams | None:
        """The accepted request's parameters."""
        return self._params

    @property
    def audio_format(self) -> AudioFormat | None:
        """The format of the audio the accepted request announced."""
        return self._format

    @property
    def state(self) -> State:
        """Where the client is in its lifecycle, as the client's own table has it.

        ``CONNECTING`` until the client sends ``Terminate``, ``TERMINATING_EARLY``
        after: the checker sees only what the client sends, never ``Begin``.
        """
        return self._state

    def _follow(self, action: Input, message: ClientMessage | None = None) -> Violation | None:
        """Move along the client's table; a move it does not allow is a violation."""
        target = TRANSITIONS[self._state].get(action)
        if target is None:
            # The table refuses a client input only once the client has sent Terminate.
            what = _WORDS[action]
            rule = "a second Terminate" if action is Input.TERMINATE else f"{what} after Terminate"
            return Violation(rule=rule, message=message)
        self._state = target
        return None

    @property
    def rejection(self) -> Rejection | None:
        """The rejection returned, once the client has broken a rule."""
        return self._rejection

    def _reject(self, code: int, error: str) -> Rejection:
        self._rejection = Rejection(code=code, error=error)
        return self._rejection

    def _require(self, requested: bool, action: str) -> None:
        if self._rejection is not None:
            raise LocalProtocolError(f"can't {action}: the client was rejected")
        if self._requested is not requested:
            when = "before" if requested else "after"
            raise LocalProtocolError(f"can't {action} {when} receive_request()")

    def receive_request(self, target: str, *, authorization: str | None = None) -> Rejection | None:
        """Check the upgrade request: ``target`` is its path and query (or whole URL).

        ``authorization`` is the value of the ``Authorization`` header, if any.
        On success :attr:`params` and :attr:`audio_format` are set.
        """
        self._require(False, "receive a request")
        self._requested = True
        try:
            query = urlsplit(target).query
        except ValueError:  # an unbalanced "[" in what looks like a host
            return self._reject(3006, "User Input Validation Error: invalid request target")
        if self._api_key is not None:
            rejection = self._check_credentials(query, authorization)
            if rejection is not None:
                return rejection
        try:
            params = parse_url("?" + query)
            fmt = AudioFormat.from_params(params)
        except InvalidParameter as exc:
            return self._reject(3006, f"User Input Validation Error: {exc}")
        self._params = params
        self._format = fmt
        return None

    def _check_credentials(self, query: str, authorization: str | None) -> Rejection | None:
        assert self._api_key is not None
        pairs = parse_qsl(query, keep_blank_values=True)
        offered = [v for k, v in pairs if k == "token"]
        if authorization is not None:
            offered.append(authorization)
        if not offered:
            return self._reject(1008, "Unauthorized connection: missing API key or token")
        expected = self._api_key.encode()
        # Compared in constant time; the credentials never reach the error text.
        # surrogatepass: a lone surrogate (a '%ED%A0%80' token) is a wrong key, not a crash.
        if not any(
            hmac.compare_digest(value.encode("utf-8", "surrogatepass"), expected)
            for value in offered
        ):
            return self._reject(1008, "Unauthorized connection: invalid API key or token")
        return None

    def receive_audio(self, frame: bytes | bytearray | memoryview) -> Rejection | Violation | None:
        """Check one binary frame of audio."""
        self._require(True, "receive audio")
        if not isinstance(frame, bytes | bytearray | memoryview):
            raise TypeError(f"frame must be bytes-like, not {type(frame).__name__}")
        if self._state not in _AUDIO_STATES:
            return self._follow(Input.SEND_AUDIO)
        nbytes = memoryview(frame).nbytes
        fmt = self._format
        assert fmt is not None
        if fmt.is_pcm:
            ms = fmt.duration_ms(nbytes)
            if ms > MAX_CHUNK_MS:
                return self._duration_violation(ms)
            if ms < MIN_CHUNK_MS:
                self._short_run += 1
                self._short_run_ms += ms
                if self._short_run >= SHORT_FRAME_LIMIT or self._short_run_ms >= _SHORT_RUN_MS:
                    return self._duration_violation(ms)
            else:
                self._short_run = 0
                self._short_run_ms = 0.0
            self.audio_ms += ms
        self.audio_bytes += nbytes
        return None

    def _duration_violation(self, ms: float) -> Rejection:
        return self._reject(
            3007,
            f"Input duration violation: {_duration_text(ms)} ms. "
            f"Expected between {MIN_CHUNK_MS} and {MAX_CHUNK_MS} ms",
        )

    def receive_text(self, text: str | bytes) -> ClientMessage | Rejection | Violation:
        """Check one text frame: the client message it holds, the rejection, or the violation."""
        self._require(True, "receive a text message")
        try:
            message = parse_client_message(
                text, max_bytes=self._max_bytes, max_depth=self._max_depth
            )
        except RemoteProtocolError as exc:
            return self._reject(3006, f"Invalid client message: {exc}")
        return self._follow(_INPUTS[message.type], message) or message
