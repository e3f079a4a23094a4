"""What every XMPP transport does the same on the suite's Prosody: xmpp:// (asyncio) and ws:// (asyncio and trio).

Transport-specific tests (URLs, TLS, how a connection is cut) stay in tests/xmpp and tests/ws.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import httpx
import msgspec
import pytest

from _cases import CASES, anyio_backend, case  # noqa: F401 - fixtures
from _prosody import XmppServer
from _transport_helpers import PASSWORD, TRICKY, Login, Sink, befriend, fresh, log_in_once, logins
from rostra._errors import AuthenticationError, ConflictError, ForbiddenError, PayloadTooLargeError
from rostra._schemas import Contact, ProfileFields
from rostra._transport import (
    ContactRequestReceived,
    PresenceChanged,
    ProfileChanged,
    Transport,
    TransportOptions,
    TransportSession,
)
from rostra_ws.transport import WsTransport
from rostra_xmpp.transport import XmppTransport

pytestmark = pytest.mark.anyio

# (transport, event loop): aioxmpp runs on asyncio only; rostra-ws runs on both.


@pytest.fixture
def transport(case: tuple[str, str], xmpp_server: XmppServer) -> Transport:
    options = TransportOptions(ca_file=str(xmpp_server.ca_file), request_timeout=5)
    if case[0] == "xmpp":
        return XmppTransport(xmpp_server.xmpp_url, options)
    return WsTransport(xmpp_server.ws_url, options)


@pytest.fixture
async def login(transport: Transport) -> AsyncIterator[Login]:
    async with logins(transport) as make:
        yield make


# -- the URL --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("transport_class", "url"),
    [(XmppTransport, "xmpp://127.0.0.1:5222"), (WsTransport, "ws://127.0.0.1:5280/xmpp-websocket")],
    ids=["xmpp", "ws"],
)
def test_a_loopback_address_means_the_domain_localhost(transport_class: type[Transport], url: str) -> None:
    assert transport_class(url, TransportOptions()).domain == "localhost"


# -- registration and login -------------------------------------------------------------------------------------


async def test_registering_an_existing_name_is_409(transport: Transport) -> None:
    username = fresh()
    await transport.register_account(username, PASSWORD)
    with pytest.raises(ConflictError) as caught:
        await transport.register_account(username, "another password")
    assert caught.value.status_code == 409


async def test_a_registered_user_logs_in_with_its_bare_jid(transport: Transport) -> None:
    username, jid = await log_in_once(transport)
    assert jid == f"{username}@localhost"


async def test_a_wrong_password_is_401(transport: Transport) -> None:
    username = fresh()
    await transport.register_account(username, PASSWORD)
    with pytest.raises(AuthenticationError) as caught:
        await transport.open_session(username, "wrong-secret", Sink())
    assert caught.value.status_code == 401


async def test_a_wrong_password_message_holds_no_password(transport: Transport) -> None:
    username = fresh()
    await transport.register_account(username, PASSWORD)
    with pytest.raises(AuthenticationError) as caught:
        await transport.open_session(username, "wrong-secret", Sink())
    assert "wrong-secret" not in repr(caught.value)


async def test_close_is_idempotent_and_reports_nothing(transport: Transport) -> None:
    username = fresh()
    await transport.register_account(username, PASSWORD)
    sink = Sink()
    session = await transport.open_session(username, PASSWORD, sink)
    await session.close()
    await session.close()
    assert sink.events == []


# -- profile ----------------------------------------------------------------------------------------------------


async def test_a_user_without_profile_reads_as_empty(login: Login) -> None:
    alice, _ = await login()
    bob, _ = await login()
    assert await alice.get_profile(bob.jid) == ProfileFields()


async def test_set_profile_returns_what_was_stored(login: Login) -> None:
    alice, _ = await login()
    assert await alice.set_profile(TRICKY) == TRICKY


async def test_a_shared_profile_round_trips_exactly_for_any_reader(login: Login) -> None:
    alice, _ = await login()
    bob, _ = await login()
    shared = msgspec.structs.replace(TRICKY, share_contact_details=True)
    await alice.set_profile(shared)
    assert await bob.get_profile(alice.jid) == shared


async def test_a_user_who_is_not_a_contact_reads_the_public_copy(login: Login) -> None:
    alice, _ = await login()
    bob, _ = await login()
    await alice.set_profile(TRICKY)
    assert await bob.get_profile(alice.jid) == msgspec.structs.replace(TRICKY, mobile_number="", email="")


async def test_a_contact_receives_the_new_profile_within_a_second(login: Login) -> None:
    alice = await login()
    bob = await login()
    await befriend(alice, bob)
    await alice[0].set_profile(TRICKY)
    with anyio.fail_after(1):
        event = await bob[1].first(lambda e: isinstance(e, ProfileChanged) and e.fields == TRICKY)
    assert event == ProfileChanged(user_jid=alice[0].jid, fields=TRICKY)


async def test_a_stored_profile_is_not_replayed_as_an_event_to_a_new_contact_nor_at_login(
    transport: Transport, login: Login
) -> None:
    """Profile events are for changes: the server keeps the item, but must not push it again (the kit's model)."""
    alice = await login()
    await alice[0].set_profile(TRICKY)
    bob = await login()
    await befriend(alice, bob)  # bob now subscribes to alice's presence and her profile node
    again_sink = Sink()
    again = await transport.open_session(alice[0].jid.partition("@")[0], PASSWORD, again_sink)
    try:
        await again.get_contacts()  # a round trip after the login's presence, then time for any replay to land
        await bob[0].get_contacts()
        await anyio.sleep(0.5)
    finally:
        await again.close()
    replays = [e for e in bob[1].events + again_sink.events if isinstance(e, ProfileChanged)]
    assert replays == []


@pytest.mark.parametrize("remover", ["publisher", "contact"])
async def test_a_removed_contact_gets_no_more_profile_events(login: Login, remover: str) -> None:
    """Prosody keeps notifying a removed contact (until its presence changes): the contact must not hear of it."""
    alice = await login()
    bob = await login()
    await befriend(alice, bob)
    if remover == "publisher":
        await alice[0].remove_contact(bob[0].jid)
    else:
        await bob[0].remove_contact(alice[0].jid)
    await bob[0].get_contacts()  # a round trip: the removal's roster push has reached bob
    await alice[0].set_profile(TRICKY)
    await alice[0].get_contacts()
    await bob[0].get_contacts()
    await anyio.sleep(0.5)  # time for a notification to land
    assert [e for e in bob[1].events if isinstance(e, ProfileChanged)] == []


async def test_a_request_removed_unanswered_can_be_made_again(login: Login) -> None:
    """Removing someone whose request waits (no roster entry) withdraws it; their next request arrives anew."""
    alice = await login()
    bob = await login()
    request = ContactRequestReceived(user_jid=alice[0].jid)
    with anyio.fail_after(5):
        await alice[0].add_contact(bob[0].jid)
        await bob[1].first(lambda e: e == request)
        await bob[0].remove_contact(alice[0].jid)
        await alice[0].add_contact(bob[0].jid)
        await bob[1].first(lambda e: bob[1].events.count(request) == 2)
    assert bob[1].events.count(request) == 2


async def test_a_friend_who_removed_us_is_asked_again_not_accepted_for_us(login: Login) -> None:
    """Once alice removed bob, bob's old request is over: her new request is his to answer (pending until then)."""
    alice = await login()
    bob = await login()
    await befriend(alice, bob)
    request = ContactRequestReceived(user_jid=alice[0].jid)
    with anyio.fail_after(5):
        await alice[0].remove_contact(bob[0].jid)
        await alice[0].add_contact(bob[0].jid)
        await bob[1].first(lambda e: bob[1].events.count(request) == 2)  # the first came with befriending
    await bob[0].get_contacts()
    await alice[0].get_contacts()
    assert [c.subscription for c in await alice[0].get_contacts()] == ["none"]


async def test_new_users_publishing_their_first_profile_at_the_same_instant_all_succeed(login: Login) -> None:
    """ejabberd 23.01 answers item-not-found to some concurrent first publishes (node creation races)."""
    users = [await login() for _ in range(5)]
    wanted = [ProfileFields(nick_name=f"first {i}", status="at once") for i in range(5)]
    async with anyio.create_task_group() as group:
        for (session, _), fields in zip(users, wanted, strict=True):
            group.start_soon(session.set_profile, fields)
    assert [await session.get_profile(session.jid) for session, _ in users] == wanted


# -- last activity, metadata, contacts, upload --------------------------------------------------------------------


async def test_last_seen_of_a_non_contact_is_403(login: Login) -> None:
    alice, _ = await login()
    bob, _ = await login()
    with pytest.raises(ForbiddenError) as caught:
        await alice.get_last_seen(bob.jid)
    assert caught.value.status_code == 403


async def test_last_seen_of_an_online_friend_is_0(login: Login) -> None:
    alice = await login()
    bob = await login()
    await befriend(alice, bob)
    assert await alice[0].get_last_seen(bob[0].jid) == 0


async def test_metadata_is_none_before_any_write(login: Login) -> None:
    alice, _ = await login()
    assert await alice.get_metadata() is None


async def test_metadata_round_trips_with_exact_types(login: Login) -> None:
    alice, _ = await login()
    metadata = {"rostra.sandbox": True, "plan": "<gold & 'silver'> 😀", "age": 42, "score": 0.1}
    await alice.set_metadata(metadata)
    stored = await alice.get_metadata()
    assert (stored, [type(v) for v in stored.values()]) == (metadata, [bool, str, int, float])  # type: ignore[union-attr]


async def test_befriended_users_are_mutual_contacts(login: Login) -> None:
    alice = await login()
    bob = await login()
    await befriend(alice, bob)
    assert await bob[0].get_contacts() == [Contact(user_jid=alice[0].jid, subscription="both", is_friend=True)]


async def test_a_removed_contact_is_gone_from_the_roster(login: Login) -> None:
    alice = await login()
    bob = await login()
    await befriend(alice, bob)
    await alice[0].remove_contact(bob[0].jid)
    assert await alice[0].get_contacts() == []


async def test_upload_returns_a_url_serving_the_bytes(login: Login) -> None:
    alice, _ = await login()
    data = b"\x89PNG\r\n\x1a\n" + uuid.uuid4().bytes
    url = await alice.upload(data, filename="avatar.png", content_type="image/png")
    assert url is not None
    async with httpx.AsyncClient() as http:
        response = await http.get(url)
    assert (response.status_code, response.content) == (200, data)


# -- tests that were written for xmpp:// only, now run on both ------------------------------------------------


async def test_a_cleared_field_reads_back_empty(login: Login) -> None:
    alice, _ = await login()
    await alice.set_profile(TRICKY)
    await alice.set_profile(ProfileFields(nick_name="Only"))
    assert await alice.get_profile(alice.jid) == ProfileFields(nick_name="Only")


async def test_a_friend_going_offline_is_a_presence_change(login: Login) -> None:
    alice = await login()
    bob = await login()
    await befriend(alice, bob)
    await bob[0].close()
    with anyio.fail_after(5):
        event = await alice[1].first(lambda e: isinstance(e, PresenceChanged) and not e.online)
    assert event == PresenceChanged(user_jid=bob[0].jid, online=False)


async def test_an_upload_over_the_servers_limit_is_413(login: Login) -> None:
    alice, _ = await login()
    too_big = bytes(11 * 1024 * 1024)  # the suite's Prosody accepts 10 MiB
    with pytest.raises(PayloadTooLargeError) as caught:
        await alice.upload(too_big, filename="big.png", content_type="image/png")
    assert caught.value.status_code == 413


async def test_our_own_publish_is_not_echoed(login: Login) -> None:
    alice, alice_events = await login()
    await alice.set_profile(TRICKY)
    await alice.get_profile(alice.jid)  # a round trip after which the event would have arrived
    assert [e for e in alice_events.events if isinstance(e, ProfileChanged)] == []


async def test_users_who_add_each_other_while_the_other_is_offline_both_become_friends(transport: Transport) -> None:
    """The CLI's way: each step its own short session, so the first one to ask is offline when the other does."""
    carol, dave = fresh(), fresh()
    for username in (carol, dave):
        await transport.register_account(username, PASSWORD)
    carol_jid, dave_jid = f"{carol}@localhost", f"{dave}@localhost"

    async def one_session(username: str, step: Callable[[TransportSession], Awaitable[object]]) -> object:
        session = await transport.open_session(username, PASSWORD, Sink())
        try:
            return await step(session)
        finally:
            await session.close()

    async def contacts_until_mutual(session: TransportSession) -> list[Contact]:
        with anyio.fail_after(5):
            while True:  # the pending request is delivered at login and answered by the session on its own
                contacts = list(await session.get_contacts())
                if all(contact.is_friend for contact in contacts):
                    return contacts
                await anyio.sleep(0.05)

    await one_session(carol, lambda s: s.add_contact(dave_jid))
    await one_session(dave, lambda s: s.add_contact(carol_jid))

    assert await one_session(carol, contacts_until_mutual) == [
        Contact(user_jid=dave_jid, subscription="both", is_friend=True)
    ]
    assert await one_session(dave, contacts_until_mutual) == [
        Contact(user_jid=carol_jid, subscription="both", is_friend=True)
    ]
