"""What only the xmpp:// transport does on the suite's Prosody (URLs, TLS, aioxmpp's stream); the rest is in
tests/transports, run on xmpp:// and ws:// alike."""

from __future__ import annotations

import datetime
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aioxmpp
import aioxmpp.node
import aioxmpp.pubsub.xso
import anyio
import OpenSSL.crypto
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from lxml import etree

from _prosody import XmppServer
from _transport_helpers import PASSWORD, TRICKY, Login, Sink, fresh, log_in_once, logins
from rostra._errors import InvalidInputError, UnreachableError
from rostra._schemas import ProfileFields
from rostra._transport import SessionLost, TransportOptions
from rostra_xmpp._boundary import _hostname_matches
from rostra_xmpp._xso import from_element
from rostra_xmpp.transport import XmppTransport
from rostra_xmpp_common import mapping

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aioxmpp runs on asyncio only


@pytest.fixture
def transport(xmpp_server: XmppServer) -> XmppTransport:
    return XmppTransport(xmpp_server.xmpp_url, TransportOptions(ca_file=str(xmpp_server.ca_file), request_timeout=5))


@pytest.fixture
async def login(transport: XmppTransport) -> AsyncIterator[Login]:
    async with logins(transport) as make:
        yield make


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def self_signed(name: str, extension: x509.ExtensionType, *, critical: bool) -> x509.Certificate:
    """A fresh self-signed certificate for ``name`` (valid from yesterday to tomorrow) with one extension."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(extension, critical=critical)
        .sign(key, hashes.SHA256())
    )


def other_ca(directory: Path) -> str:
    """A CA certificate that did NOT sign Prosody's certificate."""
    cert = self_signed("Some other CA", x509.BasicConstraints(ca=True, path_length=None), critical=True)
    path = directory / "other-ca.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(path)


# -- the URL -------------------------------------------------------------------------------------------------------


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


async def test_direct_tls_logs_in(xmpp_server: XmppServer) -> None:
    transport = XmppTransport(
        f"xmpps://127.0.0.1:{xmpp_server.xmpps_port}", TransportOptions(ca_file=str(xmpp_server.ca_file))
    )
    username, jid = await log_in_once(transport)
    assert jid == f"{username}@localhost"


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
    extension = x509.SubjectAlternativeName([x509.DNSName(name)])
    return OpenSSL.crypto.X509.from_cryptography(self_signed(name, extension, critical=False))


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


async def test_a_certificate_from_another_ca_is_503_naming_ca_file(xmpp_server: XmppServer, tmp_path: Path) -> None:
    transport = XmppTransport(xmpp_server.xmpp_url, TransportOptions(ca_file=other_ca(tmp_path)))
    with pytest.raises(UnreachableError) as caught:
        await transport.register_account(fresh(), PASSWORD)
    assert "certificate failed verification" in caught.value.message
    assert "ca_file" in caught.value.message


CERTIFICATE_FAILED = (
    "The server's TLS certificate failed verification for 'localhost': pass the ca_file option with the CA that "
    "signed it (or fix the server's certificate)"
)


async def test_a_login_with_a_certificate_from_another_ca_is_503_naming_ca_file(
    xmpp_server: XmppServer, tmp_path: Path
) -> None:
    transport = XmppTransport(xmpp_server.xmpp_url, TransportOptions(ca_file=other_ca(tmp_path)))
    with pytest.raises(UnreachableError) as caught:
        await transport.open_session(fresh(), PASSWORD, Sink())
    assert caught.value.message == CERTIFICATE_FAILED


async def test_direct_tls_with_a_certificate_from_another_ca_is_503_naming_ca_file(
    xmpp_server: XmppServer, tmp_path: Path
) -> None:
    transport = XmppTransport(xmpp_server.xmpps_url, TransportOptions(ca_file=other_ca(tmp_path)))
    with pytest.raises(UnreachableError) as caught:
        await transport.register_account(fresh(), PASSWORD)
    assert caught.value.message == CERTIFICATE_FAILED


@pytest.mark.parametrize("content", [None, b"not a certificate\n"], ids=["missing", "not-pem"])
async def test_a_ca_file_that_cannot_be_loaded_is_400_naming_it(
    xmpp_server: XmppServer, tmp_path: Path, content: bytes | None
) -> None:
    ca_file = tmp_path / "ca.pem"
    if content is not None:
        ca_file.write_bytes(content)
    transport = XmppTransport(xmpp_server.xmpp_url, TransportOptions(ca_file=str(ca_file)))
    with pytest.raises(InvalidInputError) as caught:
        await transport.register_account(fresh(), PASSWORD)
    assert caught.value.message == (
        f"The CA file {str(ca_file)!r} (the ca_file option) cannot be loaded: give a readable PEM file with the CA "
        "certificate that signed the server's certificate"
    )


async def test_a_domain_the_server_does_not_serve_is_503_naming_it(xmpp_server: XmppServer) -> None:
    url = f"{xmpp_server.xmpp_url}?domain=other.example"
    transport = XmppTransport(url, TransportOptions(ca_file=str(xmpp_server.ca_file)))
    with pytest.raises(UnreachableError) as caught:
        await transport.register_account(fresh(), PASSWORD)
    assert "refused the stream for 'other.example' (host-unknown)" in caught.value.message


async def test_verification_can_be_switched_off_explicitly(xmpp_server: XmppServer, tmp_path: Path) -> None:
    transport = XmppTransport(xmpp_server.xmpp_url, TransportOptions(ca_file=other_ca(tmp_path), verify_tls=False))
    username, jid = await log_in_once(transport)
    assert jid == f"{username}@localhost"


# -- profile ----------------------------------------------------------------------------------------------------


async def test_a_profile_node_of_another_access_model_is_reconfigured(login: Callable[..., object]) -> None:
    alice, _ = await login()  # type: ignore[misc]
    bob, _ = await login()  # type: ignore[misc]
    # An older Rostra published the whole profile world-readable (access model open).
    old = mapping.build_profile_publish(ProfileFields(nick_name="old", email="old@example.org"), with_options=False)
    form = etree.SubElement(etree.SubElement(old, f"{{{mapping.NS_PUBSUB}}}publish-options"), f"{{{mapping.NS_DATA}}}x")
    form.set("type", "submit")
    for var, value in (("FORM_TYPE", mapping.PUBLISH_OPTIONS_FORM), ("pubsub#access_model", "open")):
        field = etree.SubElement(form, f"{{{mapping.NS_DATA}}}field", var=var)
        etree.SubElement(field, f"{{{mapping.NS_DATA}}}value").text = value
    first = from_element(old, aioxmpp.pubsub.xso.Request)
    await alice._client.send(aioxmpp.IQ(type_=aioxmpp.IQType.SET, payload=first), timeout=5)
    await alice.set_profile(TRICKY)
    assert (await alice.get_profile(alice.jid), await bob.get_profile(alice.jid)) == (TRICKY, TRICKY.public())
    # The whole profile is for contacts now: bob's raw read of it is refused.
    read = from_element(mapping.build_profile_items_request(), aioxmpp.pubsub.xso.Request)
    with pytest.raises(aioxmpp.errors.XMPPError) as refused:
        await bob._client.send(aioxmpp.IQ(type_=aioxmpp.IQType.GET, to=aioxmpp.JID.fromstr(alice.jid), payload=read))
    assert refused.value.condition.value[1] in mapping.FULL_PROFILE_REFUSED


# -- last activity, metadata, contacts, upload --------------------------------------------------------------------


# -- events ---------------------------------------------------------------------------------------------------------


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
