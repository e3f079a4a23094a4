"""The ws:// transport against the suite's Prosody (its WebSocket endpoint), on asyncio and trio."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack

import anyio
import httpx
import pytest

from rostra._errors import AuthenticationError, ConflictError, ForbiddenError, InvalidInputError
from rostra._schemas import Contact, ProfileFields
from rostra._transport import (
    ContactRequestReceived,
    ContactUpdated,
    ProfileChanged,
    TransportEvent,
    TransportOptions,
    TransportSession,
)
from rostra_ws.transport import WsTransport
from rostra_xmpp._prosody import ProsodyServer

pytestmark = pytest.mark.anyio

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


def fresh() -> str:
    return f"u{uuid.uuid4().hex}"


@pytest.fixture
def transport(prosody: ProsodyServer) -> WsTransport:
    return WsTransport(prosody.ws_url, TransportOptions(ca_file=str(prosody.ca_file), request_timeout=5))


@pytest.fixture
async def login(transport: WsTransport) -> AsyncIterator[Callable[..., object]]:
    """``await login()``: a newly registered user's open session and its Sink (closed after the test)."""
    async with AsyncExitStack() as stack:

        async def make() -> tuple[TransportSession, Sink]:
            username = fresh()
            await transport.register_account(username, PASSWORD)
            sink = Sink()
            session = await transport.open_session(username, PASSWORD, sink)
            stack.push_async_callback(session.close)
            return session, sink

        yield make


async def befriend(a: tuple[TransportSession, Sink], b: tuple[TransportSession, Sink]) -> None:
    (alice, alice_events), (bob, bob_events) = a, b
    with anyio.fail_after(5):
        await alice.add_contact(bob.jid)
        await bob_events.first(lambda e: e == ContactRequestReceived(user_jid=alice.jid))
        await bob.answer_contact_request(alice.jid, accept=True)
        both = Contact(user_jid=bob.jid, subscription="both", is_friend=True)
        await alice_events.first(lambda e: isinstance(e, ContactUpdated) and e.contact == both)


# -- the URL --------------------------------------------------------------------------------------------------------


def test_a_loopback_address_means_the_domain_localhost() -> None:
    assert WsTransport("ws://127.0.0.1:5280/xmpp-websocket", TransportOptions()).domain == "localhost"


def test_plain_ws_to_another_host_needs_the_explicit_option() -> None:
    with pytest.raises(InvalidInputError) as caught:
        WsTransport("ws://chat.example/xmpp-websocket", TransportOptions())
    assert "allow_insecure_ws=True" in caught.value.message


def test_plain_ws_to_another_host_is_allowed_with_the_option() -> None:
    options = TransportOptions(extra={"allow_insecure_ws": True})
    assert WsTransport("ws://chat.example/xmpp-websocket", options).domain == "chat.example"


# -- registration and login -------------------------------------------------------------------------------------


async def test_registering_an_existing_name_is_409(transport: WsTransport) -> None:
    username = fresh()
    await transport.register_account(username, PASSWORD)
    with pytest.raises(ConflictError) as caught:
        await transport.register_account(username, "another password")
    assert caught.value.status_code == 409


async def test_a_registered_user_logs_in_with_its_bare_jid(transport: WsTransport) -> None:
    username = fresh()
    await transport.register_account(username, PASSWORD)
    session = await transport.open_session(username, PASSWORD, Sink())
    try:
        assert session.jid == f"{username}@localhost"
    finally:
        await session.close()


async def test_a_wrong_password_is_401_without_the_password(transport: WsTransport) -> None:
    username = fresh()
    await transport.register_account(username, PASSWORD)
    with pytest.raises(AuthenticationError) as caught:
        await transport.open_session(username, "wrong-secret", Sink())
    assert (caught.value.status_code, "wrong-secret" in repr(caught.value)) == (401, False)


async def test_close_is_idempotent_and_reports_nothing(transport: WsTransport) -> None:
    username = fresh()
    await transport.register_account(username, PASSWORD)
    sink = Sink()
    session = await transport.open_session(username, PASSWORD, sink)
    await session.close()
    await session.close()
    assert sink.events == []


# -- profile ----------------------------------------------------------------------------------------------------


async def test_a_user_without_profile_reads_as_empty(login: Callable[..., object]) -> None:
    alice, _ = await login()  # type: ignore[misc]
    bob, _ = await login()  # type: ignore[misc]
    assert await alice.get_profile(bob.jid) == ProfileFields()


async def test_a_profile_round_trips_exactly_for_any_reader(login: Callable[..., object]) -> None:
    alice, _ = await login()  # type: ignore[misc]
    bob, _ = await login()  # type: ignore[misc]
    assert await alice.set_profile(TRICKY) == TRICKY
    assert await bob.get_profile(alice.jid) == TRICKY


async def test_a_contact_receives_the_new_profile_within_a_second(login: Callable[..., object]) -> None:
    alice = await login()  # type: ignore[misc]
    bob = await login()  # type: ignore[misc]
    await befriend(alice, bob)
    await alice[0].set_profile(TRICKY)
    with anyio.fail_after(1):
        event = await bob[1].first(lambda e: isinstance(e, ProfileChanged) and e.fields == TRICKY)
    assert event == ProfileChanged(user_jid=alice[0].jid, fields=TRICKY)


async def test_our_own_publish_is_not_echoed(login: Callable[..., object]) -> None:
    alice, alice_events = await login()  # type: ignore[misc]
    await alice.set_profile(TRICKY)
    await alice.get_profile(alice.jid)  # a round trip after which the event would have arrived
    assert [e for e in alice_events.events if isinstance(e, ProfileChanged)] == []


# -- last activity, metadata, contacts, upload --------------------------------------------------------------------


async def test_last_seen_of_a_non_contact_is_403(login: Callable[..., object]) -> None:
    alice, _ = await login()  # type: ignore[misc]
    bob, _ = await login()  # type: ignore[misc]
    with pytest.raises(ForbiddenError) as caught:
        await alice.get_last_seen(bob.jid)
    assert caught.value.status_code == 403


async def test_last_seen_of_an_online_friend_is_0(login: Callable[..., object]) -> None:
    alice = await login()  # type: ignore[misc]
    bob = await login()  # type: ignore[misc]
    await befriend(alice, bob)
    assert await alice[0].get_last_seen(bob[0].jid) == 0


async def test_metadata_is_none_before_any_write(login: Callable[..., object]) -> None:
    alice, _ = await login()  # type: ignore[misc]
    assert await alice.get_metadata() is None


async def test_metadata_round_trips_with_exact_types(login: Callable[..., object]) -> None:
    alice, _ = await login()  # type: ignore[misc]
    metadata = {"rostra.sandbox": True, "plan": "<gold & 'silver'> 😀", "age": 42, "score": 0.1}
    await alice.set_metadata(metadata)
    stored = await alice.get_metadata()
    assert (stored, [type(v) for v in stored.values()]) == (metadata, [bool, str, int, float])  # type: ignore[union-attr]


async def test_befriended_users_are_mutual_contacts(login: Callable[..., object]) -> None:
    alice = await login()  # type: ignore[misc]
    bob = await login()  # type: ignore[misc]
    await befriend(alice, bob)
    assert await bob[0].get_contacts() == [Contact(user_jid=alice[0].jid, subscription="both", is_friend=True)]


async def test_a_removed_contact_is_gone_from_the_roster(login: Callable[..., object]) -> None:
    alice = await login()  # type: ignore[misc]
    bob = await login()  # type: ignore[misc]
    await befriend(alice, bob)
    await alice[0].remove_contact(bob[0].jid)
    assert await alice[0].get_contacts() == []


async def test_an_upload_is_served_at_its_url(login: Callable[..., object]) -> None:
    alice, _ = await login()  # type: ignore[misc]
    url = await alice.upload(b"\x89PNG fake bytes", filename="a.png", content_type="image/png")
    assert url is not None
    async with httpx.AsyncClient() as http:
        response = await http.get(url)
    assert (response.status_code, response.content) == (200, b"\x89PNG fake bytes")
