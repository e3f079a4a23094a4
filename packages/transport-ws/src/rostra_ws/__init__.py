"""Rostra over XMPP-over-WebSocket (RFC 7395)."""
