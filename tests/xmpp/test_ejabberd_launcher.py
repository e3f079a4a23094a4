"""The ejabberd launcher: what a test (and issue 5's restart tests) can rely on from the server it starts.

These run in the ejabberd run only (``nox -s tests-ejabberd``): the Prosody run's machine need not have ejabberd.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from _proc import listening_addresses
from _transport_helpers import PASSWORD, Sink, fresh
from rostra._transport import TransportOptions
from rostra_xmpp._ejabberd import DURABLE_AFTER, INSTALL_HINT, EjabberdNotInstalledError, EjabberdServer
from rostra_xmpp.transport import XmppTransport

pytestmark = [pytest.mark.ejabberd_only, pytest.mark.server]

STREAM_HEADER = (
    "<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
)


@pytest.fixture(scope="module")
def own_ejabberd() -> Iterator[EjabberdServer]:
    """An ejabberd of this module's own (the tests kill and restart it), closed after the module."""
    server = EjabberdServer(upload=False)
    try:
        server.start()
    except EjabberdNotInstalledError as error:
        pytest.fail(str(error), pytrace=False)
    yield server
    server.close()


def _read_until(sock: socket.socket, marker: bytes) -> bytes:
    received = b""
    while marker not in received:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"closed before {marker!r}; got {received!r}")
        received += chunk
    return received


def _alive(pid: int | None) -> bool:
    """True while ``pid`` runs (a zombie, killed but not yet reaped by its new parent, does not count)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_every_listener_is_on_loopback_and_on_the_ports_it_reports(own_ejabberd: EjabberdServer) -> None:
    assert own_ejabberd.pid is not None
    assert listening_addresses(own_ejabberd.pid) == {
        ("127.0.0.1", own_ejabberd.c2s_port),
        ("127.0.0.1", own_ejabberd.xmpps_port),
        ("127.0.0.1", own_ejabberd.http_port),
        ("127.0.0.1", own_ejabberd.https_port),
        ("127.0.0.1", own_ejabberd.dist_port),
    }


def test_urls_name_the_reported_ports(own_ejabberd: EjabberdServer) -> None:
    server = own_ejabberd
    assert (server.xmpp_url, server.xmpps_url, server.ws_url, server.wss_url, server.info()) == (
        f"xmpp://127.0.0.1:{server.c2s_port}",
        f"xmpps://127.0.0.1:{server.xmpps_port}",
        f"ws://127.0.0.1:{server.http_port}/ws",
        f"wss://127.0.0.1:{server.https_port}/ws",
        {
            "xmpp": server.xmpp_url,
            "ws": server.ws_url,
            "caFile": str(server.directory / "certs" / "ca.crt"),
            "domain": "localhost",
        },
    )


def test_direct_tls_serves_the_certificate_verified_for_localhost(own_ejabberd: EjabberdServer) -> None:
    context = ssl.create_default_context(cafile=str(own_ejabberd.ca_file))
    with (
        socket.create_connection(("127.0.0.1", own_ejabberd.xmpps_port), timeout=10) as sock,
        context.wrap_socket(sock, server_hostname="localhost") as tls,
    ):
        tls.sendall(STREAM_HEADER.encode())
        features = _read_until(tls, b"</stream:features>")
    assert b"<mechanism>SCRAM-SHA-1</mechanism>" in features


def test_the_plain_c2s_port_requires_starttls(own_ejabberd: EjabberdServer) -> None:
    with socket.create_connection(("127.0.0.1", own_ejabberd.c2s_port), timeout=10) as sock:
        sock.sendall(STREAM_HEADER.encode())
        features = _read_until(sock, b"</stream:features>")
    assert b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>" in features


def test_kill_then_start_comes_back_on_the_same_ports_with_the_same_accounts(own_ejabberd: EjabberdServer) -> None:
    server = own_ejabberd
    transport = XmppTransport(server.xmpp_url, TransportOptions(ca_file=str(server.ca_file), request_timeout=5))
    username = fresh()

    async def log_in() -> str:
        session = await transport.open_session(username, PASSWORD, Sink())
        try:
            return session.jid
        finally:
            await session.close()

    anyio.run(transport.register_account, username, PASSWORD)
    time.sleep(DURABLE_AFTER)  # ejabberd loses the writes of its last ~2 s on a kill (see EjabberdServer.kill)
    ports = (server.c2s_port, server.xmpps_port, server.http_port, server.https_port, server.dist_port)
    old_pid = server.pid

    server.kill()
    assert (server.running, server.pid, _alive(old_pid)) == (False, None, False)
    server.start()

    jid = anyio.run(log_in)
    assert (server.c2s_port, server.xmpps_port, server.http_port, server.https_port, server.dist_port) == ports
    assert jid == f"{username}@localhost"


def test_a_missing_ejabberdctl_is_the_install_command() -> None:
    with pytest.raises(EjabberdNotInstalledError) as caught:
        EjabberdServer(executable="rostra-no-such-ejabberdctl").start()
    assert str(caught.value) == INSTALL_HINT
    assert "apt-get install -y ejabberd" in INSTALL_HINT
