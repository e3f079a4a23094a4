"""What the transport-level tests share: the password, a tricky profile, an event Sink, fresh users, befriending.

The tests import it by name (``from _transport_helpers import ...``), like ``_prosody``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import anyio

from rostra._schemas import Contact, ProfileFields
from rostra._transport import ContactRequestReceived, ContactUpdated, Transport, TransportEvent, TransportSession

PASSWORD = "correct horse battery staple"
TRICKY = ProfileFields(
    nick_name="Zoë <&'\"> 😀",
    image="https://example.org/a.png?x=1&y=2",
    thumb_image="https://example.org/a-thumb.png",
    status="  <b>bold</b> & 'quoted' \"double\" 🎉  ",
    mobile_number="+4915112345678",
    email="zoe@example.org",
)


class Sink:
    """An EventSink that keeps every event and lets a test wait for one."""

    def __init__(self) -> None:
        self.events: list[TransportEvent] = []
        self._changed = anyio.Event()

    def __call__(self, event: TransportEvent) -> None:
        self.events.append(event)
        self._changed.set()

    async def first(self, matches: Callable[[TransportEvent], bool]) -> TransportEvent:
        while True:
            for event in self.events:
                if matches(event):
                    return event
            self._changed = anyio.Event()
            await self._changed.wait()


User = tuple[TransportSession, Sink]
Login = Callable[[], Awaitable[User]]


def fresh() -> str:
    return f"u{uuid.uuid4().hex}"


async def log_in_once(transport: Transport) -> tuple[str, str]:
    """Register a fresh user, open a session and close it: ``(username, the session's jid)``."""
    username = fresh()
    await transport.register_account(username, PASSWORD)
    session = await transport.open_session(username, PASSWORD, Sink())
    try:
        return username, session.jid
    finally:
        await session.close()


@asynccontextmanager
async def logins(transport: Transport) -> AsyncIterator[Login]:
    """``await login()`` inside: a newly registered user's open session and its Sink (all closed on exit)."""
    async with AsyncExitStack() as stack:

        async def login() -> User:
            username = fresh()
            await transport.register_account(username, PASSWORD)
            sink = Sink()
            session = await transport.open_session(username, PASSWORD, sink)
            stack.push_async_callback(session.close)
            return session, sink

        yield login


async def befriend(a: User, b: User) -> None:
    (alice, alice_events), (bob, bob_events) = a, b
    with anyio.fail_after(5):
        await alice.add_contact(bob.jid)
        await bob_events.first(lambda e: e == ContactRequestReceived(user_jid=alice.jid))
        await bob.answer_contact_request(alice.jid, accept=True)
        both = Contact(user_jid=bob.jid, subscription="both", is_friend=True)
        await alice_events.first(lambda e: isinstance(e, ContactUpdated) and e.contact == both)
