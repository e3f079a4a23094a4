"""Rostra XMPP over TCP."""
