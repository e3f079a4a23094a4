"""Deliberately broken transports, each wrong in one small way, for showing that the kit catches them.

Both are memory:// underneath; tests/conformance/test_kit_catches_broken.py registers them under their own URL
schemes through an entry-point file, as an installed package would.
"""

from __future__ import annotations

import msgspec

from rostra._errors import AuthenticationError, ForbiddenError, NotFoundError
from rostra._schemas import ProfileFields
from rostra._transport import EventSink, TransportSession
from rostra.memory import MemorySession, MemoryTransport


class _DropsStatusSession(MemorySession):
    async def get_profile(self, user_jid: str) -> ProfileFields:
        return msgspec.structs.replace(await super().get_profile(user_jid), status="")


class _BrokenTransport(MemoryTransport):
    """memory://, with sessions of ``session_class``: a MemorySession that overrides one call."""

    session_class: type[MemorySession] = MemorySession

    async def open_session(self, username: str, password: str, events: EventSink) -> TransportSession:
        session = await super().open_session(username, password, events)
        assert isinstance(session, MemorySession)
        return self.session_class(session._server, session._session)


class DropsStatusTransport(_BrokenTransport):
    """Loses the ``status`` of every profile it reads (as a mapping that forgot one vCard element would)."""

    schemes = ("drops-status",)
    session_class = _DropsStatusSession


class _Answers404Session(MemorySession):
    async def get_last_seen(self, user_jid: str) -> int:
        try:
            return await super().get_last_seen(user_jid)
        except ForbiddenError:
            raise NotFoundError("No such user") from None


class Answers404Transport(_BrokenTransport):
    """Answers 404 where the specification says 403 (last seen of a user who is not a contact)."""

    schemes = ("answers-404",)
    session_class = _Answers404Session


class LeaksPasswordTransport(_BrokenTransport):
    """Puts the password it was given into the text of a refused login (as a careless error message would)."""

    schemes = ("leaks-password",)

    async def open_session(self, username: str, password: str, events: EventSink) -> TransportSession:
        try:
            return await super().open_session(username, password, events)
        except AuthenticationError:
            raise AuthenticationError(f"bad password {password!r} for {username}") from None


class _CloseRaisesSession(MemorySession):
    async def close(self) -> None:
        await super().close()
        raise OSError("socket already closed")


class CloseRaisesTransport(_BrokenTransport):
    """Raises from close() (which the Client logs and hides: the interface says close never raises)."""

    schemes = ("close-raises",)
    session_class = _CloseRaisesSession
