"""Retrying a failed opening, as AssemblyAI's official SDKs do (both adapters use this).

Strategy: the policy is data and one function; the loop that applies it is the
adapter's, which sleeps with its own clock. Each attempt is a whole opening --
TCP (and TLS), the upgrade, ``Begin`` -- with its own ``connect_timeout``, as the
SDKs bound each attempt. What the SDKs do, and what we follow:

- The Python SDK (``assemblyai/streaming/v3/client.py`` and ``async_client.py``,
  ``connect``; the options in ``models.py``, ``StreamingClientOptions``:
  ``max_connection_retries=2``, ``connection_retry_delay=0.5``,
  ``connect_timeout=1.0``) retries a handshake that failed (a timeout, a refused
  or dropped connection, a broken handshake) and never an HTTP status
  (``InvalidStatus``: "a retry would hit the same response").
- The Node SDK retries every close but 1000 and its non-retryable set
  {4000, 4001, 4002, 4003, 4101}; issue 15 adds 1008 and 3006. A close before
  ``Begin`` is judged by :data:`aai_proto._errors.NON_RETRYABLE_CLOSE_CODES`,
  the same table as :attr:`~aai_proto.StreamingError.retryable`.

Anything else an opening raises (a ``RemoteProtocolError``: the server broke the
protocol; a ``ValueError``; a cancellation) is not retried.
"""

from __future__ import annotations

import math
import sys
from typing import Final, final

from aai_proto import ConnectionClosed, StreamingError
from aai_proto._errors import NON_RETRYABLE_CLOSE_CODES

from .errors import ConnectError, ConnectTimeout, HandshakeRejected

__all__ = ["DEFAULT_RETRIES", "DEFAULT_RETRY_DELAY", "Attempts", "check_retries", "may_retry"]

DEFAULT_RETRIES: Final = 2
"""Attempts after the first that ``open_session`` makes (the SDKs' default)."""
DEFAULT_RETRY_DELAY: Final = 0.5
"""Seconds between two attempts (the SDKs' default)."""


def may_retry(error: Exception, closed: ConnectionClosed | None = None) -> bool:
    """Whether an opening that raised ``error`` may be tried again.

    ``closed`` is how the attempt's connection closed, if it closed before
    ``Begin``: a close the table calls final (1000, say) is not retried, even when
    it came as a ``ConnectError``.
    """
    if isinstance(error, HandshakeRejected):
        return False  # an HTTP status: the same request gets the same answer
    if isinstance(error, StreamingError):
        return error.retryable
    if isinstance(error, ConnectTimeout):
        return True
    if isinstance(error, ConnectError):
        return closed is None or closed.code not in NON_RETRYABLE_CLOSE_CODES
    return False


def check_retries(retries: int, retry_delay: float) -> None:
    """Raise ``ValueError`` for a retry budget no opening can run with."""
    if type(retries) is not int or retries < 0:
        raise ValueError(f"retries must be a whole number, at least 0; got {retries!r}")
    if type(retry_delay) not in (int, float) or not (0 <= retry_delay < math.inf):
        raise ValueError(
            f"retry_delay must be a finite number of seconds, at least 0; got {retry_delay!r}"
        )


@final
class Attempts:
    """The attempt loop's decisions for one ``open_session``.

    The adapter makes an attempt; when it fails, it calls :meth:`retry` inside its
    ``except`` block: ``False`` means re-raise (bare ``raise``, so the traceback is
    the attempt's own), ``True`` means sleep :attr:`delay` seconds and try again.
    The exception finally raised carries a note for each earlier attempt's failure,
    so nothing is lost (the messages name no key or token).
    """

    def __init__(self, *, retries: int, delay: float) -> None:
        self.retries = retries
        self.delay = delay
        self._failures: list[str] = []

    def retry(self, error: Exception, closed: ConnectionClosed | None = None) -> bool:
        """Record that an attempt failed with ``error``; say whether to try again."""
        again = len(self._failures) < self.retries and may_retry(error, closed)
        if not again:
            for number, failure in enumerate(self._failures, start=1):
                _add_note(error, f"attempt {number} failed too: {failure}")
        self._failures.append(f"{type(error).__name__}: {error}")
        return again


def _add_note(error: Exception, note: str) -> None:
    if sys.version_info >= (3, 11):
        error.add_note(note)
    else:  # the same attribute (PEP 678), which the exceptiongroup backport displays
        notes = getattr(error, "__notes__", None)
        if notes is None:
            notes = []
            setattr(error, "__notes__", notes)  # noqa: B010 -- no such attribute in 3.10's stubs
        notes.append(note)
