"""Rostra over XMPP-over-WebSocket (RFC 7395): ``ws://`` and ``wss://`` on wsproto and anyio (asyncio and trio)."""

from ._errors import StreamProtocolError
from .transport import WsTransport

__all__ = ["StreamProtocolError", "WsTransport"]
