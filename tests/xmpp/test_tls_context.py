"""xmpp:// shares one OpenSSL context per (CA file as it is, verification, direct TLS) across connections, and the
shared context still checks each connection's certificate against that connection's own domain."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import anyio
import OpenSSL.crypto
import pytest
from test_xmpp_transport import certificate_for, other_ca

from _prosody import XmppServer
from _transport_helpers import PASSWORD, Sink, fresh
from rostra._errors import UnreachableError
from rostra._transport import TransportOptions
from rostra_xmpp._boundary import TlsPolicy, _verify
from rostra_xmpp.transport import XmppTransport

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_policies_of_the_same_ca_file_and_verification_share_one_context(xmpp_server: XmppServer) -> None:
    ca_file = str(xmpp_server.ca_file)
    first = TlsPolicy("localhost", ca_file, True).ssl_context()
    others = [
        TlsPolicy("other.example", ca_file, True).ssl_context(),  # the domain is checked per connection
        TlsPolicy("localhost", ca_file, False).ssl_context(),
        TlsPolicy("localhost", ca_file, True, direct_tls=True).ssl_context(),
        TlsPolicy("localhost", None, True).ssl_context(),
    ]
    assert [other is first for other in others] == [True, False, False, False]


def test_a_changed_ca_file_gets_a_new_context(xmpp_server: XmppServer, tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.crt"
    shutil.copyfile(xmpp_server.ca_file, ca_file)
    before = TlsPolicy("localhost", str(ca_file), True).ssl_context()
    ca_file.write_bytes(Path(other_ca(tmp_path)).read_bytes())
    os.utime(ca_file, ns=(1, 1))  # a new mtime even on a coarse clock
    after = TlsPolicy("localhost", str(ca_file), True).ssl_context()
    assert (after is before, after is TlsPolicy("localhost", str(ca_file), True).ssl_context()) == (False, True)


class _Transport:
    def __init__(self, policy: TlsPolicy | None) -> None:
        if policy is not None:
            self._rostra_tls_policy = policy


class _Connection:
    """What the verify callback reads of an OpenSSL connection: aioopenssl makes its transport the app data."""

    def __init__(self, transport: _Transport) -> None:
        self._transport = transport

    def get_app_data(self) -> _Transport:
        return self._transport


def test_the_shared_context_checks_each_connections_own_domain() -> None:
    cert: OpenSSL.crypto.X509 = certificate_for("localhost")
    right, wrong, unchained = (TlsPolicy(domain, None, True) for domain in ("localhost", "other.example", "localhost"))
    verdicts = [
        _verify(_Connection(_Transport(right)), cert, 0, 0, 1),
        _verify(_Connection(_Transport(wrong)), cert, 0, 0, 1),
        _verify(_Connection(_Transport(None)), cert, 0, 0, 1),  # not ours: refused
        _verify(_Connection(_Transport(unchained)), cert, 20, 1, 0),  # OpenSSL's chain check failed
    ]
    flags = [policy.certificate_failed for policy in (right, wrong, unchained)]
    assert (verdicts, flags) == ([True, False, False, False], [False, True, True])


async def test_concurrent_logins_of_one_ca_file_and_of_another_ca_each_get_their_own_outcome(
    xmpp_server: XmppServer, tmp_path: Path
) -> None:
    good = XmppTransport(xmpp_server.xmpp_url, TransportOptions(ca_file=str(xmpp_server.ca_file)))
    bad = XmppTransport(xmpp_server.xmpp_url, TransportOptions(ca_file=other_ca(tmp_path)))
    outcomes: dict[str, str] = {}

    async def register(name: str, transport: XmppTransport) -> None:
        try:
            await transport.register_account(fresh(), PASSWORD)
            outcomes[name] = "registered"
        except UnreachableError as exc:
            outcomes[name] = exc.message

    async def log_in(name: str, transport: XmppTransport) -> None:
        username = fresh()
        await transport.register_account(username, PASSWORD)
        session = await transport.open_session(username, PASSWORD, Sink())
        outcomes[name] = session.jid.partition("@")[2]
        await session.close()

    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            for n in range(3):
                group.start_soon(log_in, f"good{n}", good)
                group.start_soon(register, f"bad{n}", bad)
    failed = (
        "The server's TLS certificate failed verification for 'localhost': pass the ca_file option with the CA that "
        "signed it (or fix the server's certificate)"
    )
    assert outcomes == {**{f"good{n}": "localhost" for n in range(3)}, **{f"bad{n}": failed for n in range(3)}}
