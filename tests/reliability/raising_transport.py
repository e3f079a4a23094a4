"""A transport with a bug: memory:// whose ``get_profile`` raises a bare ``KeyError`` for one user.

tests/reliability/test_transport_guard.py registers it under the URL scheme ``raises-keyerror`` through an
entry-point file, as an installed package would.
"""

from __future__ import annotations

from rostra._schemas import ProfileFields
from rostra._transport import EventSink, TransportSession
from rostra.memory import MemorySession, MemoryTransport

#: The user whose profile makes the transport fail.
BROKEN_USER = "broken@localhost"


class _RaisingSession(MemorySession):
    async def get_profile(self, user_jid: str) -> ProfileFields:
        if user_jid == BROKEN_USER:
            raise KeyError(user_jid)  # a bug: a lookup the transport forgot to guard
        return await super().get_profile(user_jid)


class RaisingTransport(MemoryTransport):
    schemes = ("raises-keyerror",)

    async def open_session(self, username: str, password: str, events: EventSink) -> TransportSession:
        session = await super().open_session(username, password, events)
        assert isinstance(session, MemorySession)
        return _RaisingSession(session._server, session._session)
