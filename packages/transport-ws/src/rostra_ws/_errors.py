"""The one protocol error of the WebSocket transport.

Rules:
- ``StreamProtocolError`` is raised when the SERVER sent something that is not valid XMPP-over-WebSocket
  (RFC 7395): the session cannot go on. It is a ``rostra.ServerError`` (500).
- Its message says what was wrong in a few words; it never quotes the offending bytes (they may carry SASL
  payloads or other people's data) and never holds a password.
"""

from __future__ import annotations

from rostra._errors import ServerError

__all__ = ["StreamProtocolError"]


class StreamProtocolError(ServerError):
    """The server sent something that is not valid XMPP-over-WebSocket; the session cannot go on."""

    default_message = "The server broke the XMPP-over-WebSocket protocol: the session was closed"
