"""The xmpp:// transport against the suite's Prosody: what each TransportSession call does on a real server."""

from __future__ import annotations

import datetime
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import aioxmpp
import aioxmpp.node
import aioxmpp.pubsub.xso
import anyio
import httpx
import OpenSSL.crypto
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from rostra._errors import (
    AuthenticationError,
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    PayloadTooLargeError,
    UnreachableError,
)
from rostra._schemas import Contact, ProfileFields
from rostra._transport import (
    ContactRequestReceived,
    ContactUpdated,
    PresenceChanged,
    ProfileChanged,
    SessionLost,
    TransportEvent,
    TransportOptions,
)
from rostra._transport import TransportSession as Session
from rostra_xmpp._boundary import _hostname_matches
from rostra_xmpp._prosody import ProsodyServer
from rostra_xmpp._xso import from_element
from rostra_xmpp.transport import XmppTransport
from rostra_xmpp_common import mapping

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


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aioxmpp runs on asyncio only


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
def transport(prosody: ProsodyServer) -> XmppTransport:
    return XmppTransport(prosody.xmpp_url, TransportOptions(ca_file=str(prosody.ca_file), request_timeout=5))


@pytest.fixture
async def login(transport: XmppTransport) -> AsyncIterator[Callable[..., object]]:
    """``await login()``: a newly registered user's open session and its Sink (closed after the test)."""
    async with AsyncExitStack() as stack:

        async def make() -> tuple[Session, Sink]:
            username = fresh()
            await transport.register_account(username, PASSWORD)
            sink = Sink()
            session = await transport.open_session(username, PASSWORD, sink)
            stack.push_async_callback(session.close)
            return session, sink

        yield make


async def befriend(a: tuple[Session, Sink], b: tuple[Session, Sink]) -> None:
    (alice, alice_events), (bob, bob_events) = a, b
    with anyio.fail_after(5):
        await alice.add_contact(bob.jid)
        await bob_events.first(lambda e: e == ContactRequestReceived(user_jid=alice.jid))
        await bob.answer_contact_request(alice.jid, accept=True)
        both = Contact(user_jid=bob.jid, subscription="both", is_friend=True)
        await alice_events.first(lambda e: isinstance(e, ContactUpdated) and e.contact == both)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def other_ca(directory: Path) -> str:
    """A CA certificate that did NOT sign Prosody's certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Some other CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = directory / "other-ca.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(path)


# -- the URL -------------------------------------------------------------------------------------------------------


def test_a_loopback_address_means_the_domain_localhost() -> None:
    assert XmppTransport("xmpp://127.0.0.1:5222", TransportOptions()).domain == "localhost"


def test_the_url_can_name_the_domain() -> None:
    assert XmppTransport("xmpps://10.1.2.3?domain=chat.example", TransportOptions()).domain == "chat.example"


def test_a_host_name_is_the_domain() -> None:
    assert XmppTransport("xmpp://chat.example", TransportOptions()).domain == "chat.example"


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_under_trio_the_transport_says_it_needs_asyncio() -> None:
    transport = XmppTransport("xmpp://127.0.0.1:5222", TransportOptions())
    with pytest.raises(InvalidInputError) as caught:
        await transport.register_account(fresh(), PASSWORD)
    assert "needs asyncio" in caught.value.message


# -- registration and login -------------------------------------------------------------------------------------


async def test_registering_an_existing_name_is_409(transport: XmppTransport) -> None:
    username = fresh()
    await transport.register_account(username, PASSWORD)
    with pytest.raises(ConflictError) as caught:
        await transport.register_account(username, "another password")
    assert caught.value.status_code == 409


async def test_a_registered_user_logs_in_with_its_bare_jid(transport: XmppTransport) -> None:
    username = fresh()
    await transport.register_account(username, PASSWORD)
    session = await transport.open_session(username, PASSWORD, Sink())
    try:
        assert session.jid == f"{username}@localhost"
    finally:
        await session.close()


async def test_a_wrong_password_is_401(transport: XmppTransport) -> None:
    username = fresh()
    await transport.register_account(username, PASSWORD)
    with pytest.raises(AuthenticationError) as caught:
        await transport.open_session(username, "wrong", Sink())
    assert caught.value.status_code == 401


async def test_a_wrong_password_message_holds_no_password(transport: XmppTransport) -> None:
    username = fresh()
    await transport.register_account(username, PASSWORD)
    with pytest.raises(AuthenticationError) as caught:
        await transport.open_session(username, "wrong-secret", Sink())
    assert "wrong-secret" not in repr(caught.value)


async def test_direct_tls_logs_in(prosody: ProsodyServer) -> None:
    transport = XmppTransport(f"xmpps://127.0.0.1:{prosody.xmpps_port}", TransportOptions(ca_file=str(prosody.ca_file)))
    username = fresh()
    await transport.register_account(username, PASSWORD)
    session = await transport.open_session(username, PASSWORD, Sink())
    try:
        assert session.jid == f"{username}@localhost"
    finally:
        await session.close()


async def test_a_closed_port_is_503_without_falling_back_to_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    discovered: list[str] = []

    async def discover(domain: str, **kwargs: object) -> list[object]:
        discovered.append(domain)
        return []

    monkeypatch.setattr(aioxmpp.node, "discover_connectors", discover)
    transport = XmppTransport(f"xmpp://127.0.0.1:{closed_port()}", TransportOptions(connect_timeout=5))
    with anyio.fail_after(5), pytest.raises(UnreachableError) as caught:
        await transport.open_session("nobody", PASSWORD, Sink())
    assert (caught.value.status_code, discovered) == (503, [])


async def test_registration_on_a_closed_port_is_503() -> None:
    transport = XmppTransport(f"xmpp://127.0.0.1:{closed_port()}", TransportOptions(connect_timeout=5))
    with anyio.fail_after(5), pytest.raises(UnreachableError) as caught:
        await transport.register_account(fresh(), PASSWORD)
    assert caught.value.status_code == 503


def certificate_for(name: str) -> OpenSSL.crypto.X509:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return OpenSSL.crypto.X509.from_cryptography(cert)


@pytest.mark.parametrize(
    ("cert_name", "domain", "matches"),
    [
        ("localhost", "localhost", True),
        ("LocalHost", "localhost.", True),
        ("localhost", "other.example", False),
        ("*.example.org", "chat.example.org", True),
        ("*.example.org", "example.org", False),
        ("*.example.org", "a.chat.example.org", False),
    ],
)
def test_the_certificate_must_name_the_domain(cert_name: str, domain: str, matches: bool) -> None:
    assert _hostname_matches(certificate_for(cert_name), domain) is matches


async def test_a_certificate_from_another_ca_is_503_naming_ca_file(prosody: ProsodyServer, tmp_path: Path) -> None:
    transport = XmppTransport(prosody.xmpp_url, TransportOptions(ca_file=other_ca(tmp_path)))
    with pytest.raises(UnreachableError) as caught:
        await transport.register_account(fresh(), PASSWORD)
    assert "certificate failed verification" in caught.value.message
    assert "ca_file" in caught.value.message


CERTIFICATE_FAILED = (
    "The server's TLS certificate failed verification for 'localhost': pass the ca_file option with the CA that "
    "signed it (or fix the server's certificate)"
)


async def test_a_login_with_a_certificate_from_another_ca_is_503_naming_ca_file(
    prosody: ProsodyServer, tmp_path: Path
) -> None:
    transport = XmppTransport(prosody.xmpp_url, TransportOptions(ca_file=other_ca(tmp_path)))
    with pytest.raises(UnreachableError) as caught:
        await transport.open_session(fresh(), PASSWORD, Sink())
    assert caught.value.message == CERTIFICATE_FAILED


async def test_direct_tls_with_a_certificate_from_another_ca_is_503_naming_ca_file(
    prosody: ProsodyServer, tmp_path: Path
) -> None:
    transport = XmppTransport(prosody.xmpps_url, TransportOptions(ca_file=other_ca(tmp_path)))
    with pytest.raises(UnreachableError) as caught:
        await transport.register_account(fresh(), PASSWORD)
    assert caught.value.message == CERTIFICATE_FAILED


@pytest.mark.parametrize("content", [None, b"not a certificate\n"], ids=["missing", "not-pem"])
async def test_a_ca_file_that_cannot_be_loaded_is_400_naming_it(
    prosody: ProsodyServer, tmp_path: Path, content: bytes | None
) -> None:
    ca_file = tmp_path / "ca.pem"
    if content is not None:
        ca_file.write_bytes(content)
    transport = XmppTransport(prosody.xmpp_url, TransportOptions(ca_file=str(ca_file)))
    with pytest.raises(InvalidInputError) as caught:
        await transport.register_account(fresh(), PASSWORD)
    assert caught.value.message == (
        f"The CA file {str(ca_file)!r} (the ca_file option) cannot be loaded: give a readable PEM file with the CA "
        "certificate that signed the server's certificate"
    )


async def test_a_domain_the_server_does_not_serve_is_503_naming_it(prosody: ProsodyServer) -> None:
    url = f"{prosody.xmpp_url}?domain=other.example"
    transport = XmppTransport(url, TransportOptions(ca_file=str(prosody.ca_file)))
    with pytest.raises(UnreachableError) as caught:
        await transport.register_account(fresh(), PASSWORD)
    assert "refused the stream for 'other.example' (host-unknown)" in caught.value.message


async def test_verification_can_be_switched_off_explicitly(prosody: ProsodyServer, tmp_path: Path) -> None:
    transport = XmppTransport(prosody.xmpp_url, TransportOptions(ca_file=other_ca(tmp_path), verify_tls=False))
    username = fresh()
    await transport.register_account(username, PASSWORD)
    session = await transport.open_session(username, PASSWORD, Sink())
    try:
        assert session.jid == f"{username}@localhost"
    finally:
        await session.close()


async def test_close_is_idempotent(transport: XmppTransport) -> None:
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


async def test_set_profile_returns_what_was_stored(login: Callable[..., object]) -> None:
    alice, _ = await login()  # type: ignore[misc]
    assert await alice.set_profile(TRICKY) == TRICKY


async def test_a_profile_round_trips_exactly_for_any_reader(login: Callable[..., object]) -> None:
    alice, _ = await login()  # type: ignore[misc]
    bob, _ = await login()  # type: ignore[misc]
    await alice.set_profile(TRICKY)
    assert await bob.get_profile(alice.jid) == TRICKY


async def test_a_cleared_field_reads_back_empty(login: Callable[..., object]) -> None:
    alice, _ = await login()  # type: ignore[misc]
    await alice.set_profile(TRICKY)
    await alice.set_profile(ProfileFields(nick_name="Only"))
    assert await alice.get_profile(alice.jid) == ProfileFields(nick_name="Only")


async def test_a_contact_receives_the_new_profile_within_a_second(login: Callable[..., object]) -> None:
    alice = await login()  # type: ignore[misc]
    bob = await login()  # type: ignore[misc]
    await befriend(alice, bob)
    await alice[0].set_profile(TRICKY)
    with anyio.fail_after(1):
        event = await bob[1].first(lambda e: isinstance(e, ProfileChanged) and e.fields == TRICKY)
    assert event == ProfileChanged(user_jid=alice[0].jid, fields=TRICKY)


async def test_a_profile_node_of_another_access_model_is_reopened(login: Callable[..., object]) -> None:
    alice, _ = await login()  # type: ignore[misc]
    bob, _ = await login()  # type: ignore[misc]
    # Another client created the node readable by contacts only (Prosody's default when no options are given).
    first = from_element(
        mapping.build_profile_publish(ProfileFields(nick_name="old"), with_options=False),
        aioxmpp.pubsub.xso.Request,
    )
    await alice._client.send(aioxmpp.IQ(type_=aioxmpp.IQType.SET, payload=first), timeout=5)
    await alice.set_profile(TRICKY)
    assert await bob.get_profile(alice.jid) == TRICKY


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


async def test_upload_returns_a_url_serving_the_bytes(login: Callable[..., object]) -> None:
    alice, _ = await login()  # type: ignore[misc]
    data = b"\x89PNG\r\n\x1a\n" + uuid.uuid4().bytes
    url = await alice.upload(data, filename="avatar.png", content_type="image/png")
    assert url is not None
    async with httpx.AsyncClient() as http:
        response = await http.get(url)
    assert (response.status_code, response.content) == (200, data)


# -- events ---------------------------------------------------------------------------------------------------------


async def test_a_friend_going_offline_is_a_presence_change(login: Callable[..., object]) -> None:
    alice = await login()  # type: ignore[misc]
    bob = await login()  # type: ignore[misc]
    await befriend(alice, bob)
    await bob[0].close()
    with anyio.fail_after(5):
        event = await alice[1].first(lambda e: isinstance(e, PresenceChanged) and not e.online)
    assert event == PresenceChanged(user_jid=bob[0].jid, online=False)


async def test_a_lost_connection_is_reported_once_as_503(login: Callable[..., object]) -> None:
    session, sink = await login()  # type: ignore[misc]
    # Cut the TCP connection under the session, as a network failure would.
    xmlstream = session._client.stream._xmlstream
    xmlstream.transport.get_extra_info("socket").shutdown(socket.SHUT_RDWR)
    with anyio.fail_after(5):
        await sink.first(lambda e: isinstance(e, SessionLost))
    await anyio.wait_all_tasks_blocked()
    lost = [e for e in sink.events if isinstance(e, SessionLost)]
    assert [e.error.status_code for e in lost] == [503]


async def test_an_upload_over_the_servers_limit_is_413(login: Callable[..., object]) -> None:
    alice, _ = await login()  # type: ignore[misc]
    too_big = bytes(11 * 1024 * 1024)  # the suite's Prosody accepts 10 MiB
    with pytest.raises(PayloadTooLargeError) as caught:
        await alice.upload(too_big, filename="big.png", content_type="image/png")
    assert caught.value.status_code == 413
