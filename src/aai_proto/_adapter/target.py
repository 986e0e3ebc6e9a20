"""Where a session connects, taken apart from its URL: what both adapters check first."""

from __future__ import annotations

from typing import final
from urllib.parse import urlsplit

import attrs

__all__ = ["Target"]


@final
@attrs.frozen(kw_only=True)
class Target:
    """Where a session connects: taken apart from its full URL."""

    shown: str
    """The URL the caller gave, credentials masked: for messages."""
    host: str
    port: int
    secure: bool
    host_header: str
    resource: str

    @classmethod
    def from_url(cls, url: str, *, shown: str) -> Target:
        """Take apart a ``ws://`` or ``wss://`` URL; raise ``ValueError`` for anything else."""
        try:
            parts = urlsplit(url)
        except ValueError:  # urllib's message may quote the URL, user name and all
            raise ValueError(f"not a valid URL: {shown!r}") from None
        if parts.scheme not in ("ws", "wss"):
            raise ValueError(f"expected a ws:// or wss:// URL, got {shown!r}")
        if "@" in parts.netloc:
            raise ValueError("the URL must not hold a user name or password; give api_key or token")
        if not parts.hostname:
            raise ValueError(f"the URL has no host: {shown!r}")
        secure = parts.scheme == "wss"
        try:
            port = parts.port or (443 if secure else 80)
        except ValueError:
            raise ValueError(f"the URL has an invalid port: {shown!r}") from None
        resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(
            shown=shown,
            host=parts.hostname,
            port=port,
            secure=secure,
            host_header=parts.netloc,
            resource=resource,
        )
