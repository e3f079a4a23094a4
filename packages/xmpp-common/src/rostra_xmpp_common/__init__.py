"""Rostra XMPP common mapping."""
