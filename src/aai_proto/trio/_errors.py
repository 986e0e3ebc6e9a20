"""Why a session's connection could not be opened: the errors both adapters share."""

from aai_proto._adapter.errors import ConnectError, ConnectTimeout, HandshakeRejected

__all__ = ["ConnectError", "ConnectTimeout", "HandshakeRejected"]
