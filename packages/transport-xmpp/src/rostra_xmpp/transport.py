"""``xmpp://`` (STARTTLS) and ``xmpps://`` (direct TLS) on aioxmpp.

Rules:
- The URL names exactly where to connect; the XMPP domain is ``?domain=``, ``options.extra["domain"]``, or the
  host, except that a loopback IP literal means ``localhost`` (docs/architecture.md).
- Payloads come from ``rostra_xmpp_common.mapping``; aioxmpp exceptions are translated in ``_boundary`` only.
- aioxmpp is asyncio-only and its objects are built inside the running loop.
"""

from __future__ import annotations

import asyncio
import logging

import aioxmpp
import aioxmpp.connector
import aioxmpp.ibr.xso as ibr_xso
import aioxmpp.node
import aioxmpp.protocol

from rostra._errors import InvalidInputError
from rostra._transport import EventSink, Transport, TransportOptions, TransportSession
from rostra_xmpp_common import mapping
from rostra_xmpp_common.address import parse_server_url
from rostra_xmpp_common.options import CARRIER_OPTIONS, carrier_options

from ._boundary import PinnedConnector, TlsPolicy, raise_translated, translate
from ._session import XmppSession
from ._xso import from_element

__all__ = ["XmppTransport"]

_DEFAULT_PORTS = {"xmpp": 5222, "xmpps": 5223}
# The logger of every aioxmpp stream Rostra opens (the sessions' too): its XMLStream child logs the wire at DEBUG.
_aioxmpp_log = logging.getLogger("rostra_xmpp.aioxmpp")


def _require_asyncio() -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise InvalidInputError(
            "xmpp:// runs on aioxmpp, which needs asyncio: run the Client under asyncio (anyio's asyncio backend)"
        ) from None


class XmppTransport(Transport):
    """XMPP over TCP with TLS: STARTTLS for ``xmpp://host[:port]``, direct TLS for ``xmpps://host[:port]``."""

    schemes = ("xmpp", "xmpps")
    extra_options = CARRIER_OPTIONS  # accepted so that only the URL changes between carriers; see options.py

    def __init__(self, url: str, options: TransportOptions) -> None:
        super().__init__(url, options)
        # Checked here too (the same values are valid on every carrier); max_message_bytes bounds each stanza.
        self._max_stanza_bytes = carrier_options(options.extra).max_message_bytes
        address = parse_server_url(url, _DEFAULT_PORTS, options.extra)  # the one rule shared by XMPP carriers
        self._direct_tls = address.scheme == "xmpps"
        self._host = address.host
        self._port = address.port
        self._domain = address.domain

    @property
    def domain(self) -> str:
        return self._domain

    def _policy(self) -> TlsPolicy:
        return TlsPolicy(self._domain, self.options.ca_file, self.options.verify_tls, direct_tls=self._direct_tls)

    def _peer(self, policy: TlsPolicy) -> list[tuple[str, int, PinnedConnector]]:
        inner = aioxmpp.connector.XMPPOverTLSConnector() if self._direct_tls else aioxmpp.connector.STARTTLSConnector()
        return [(self._host, self._port, PinnedConnector(inner, policy, self._max_stanza_bytes))]

    def _jid(self, username: str) -> aioxmpp.JID:
        try:
            return aioxmpp.JID(username, self._domain, None)
        except ValueError:
            raise InvalidInputError(f"{username!r} is not a valid XMPP username") from None

    async def register_account(self, username: str, password: str) -> None:
        """Create the account by XEP-0077 on an unauthenticated stream; see ``Transport.register_account``."""
        _require_asyncio()
        jid = self._jid(username)
        policy = self._policy()
        query = from_element(mapping.build_register_query(username, password), ibr_xso.Query)
        stream = None
        try:
            _, stream, _ = await asyncio.wait_for(
                aioxmpp.node.connect_xmlstream(
                    jid,
                    policy.security_layer(None),
                    negotiation_timeout=self.options.connect_timeout,
                    override_peer=self._peer(policy),
                    logger=_aioxmpp_log,
                ),
                self.options.connect_timeout,
            )
            await _register(stream, jid.replace(localpart=None), query, self.options.request_timeout)
        except BaseException as exc:
            raise_translated(exc, operation="register", policy=policy)
        finally:
            if stream is not None:
                await _close_stream(stream)

    async def open_session(self, username: str, password: str, events: EventSink) -> TransportSession:
        """Log in with SASL (SCRAM first) and bind; see ``Transport.open_session``."""
        _require_asyncio()
        jid = self._jid(username)
        policy = self._policy()
        with translate("connect", policy):
            return await XmppSession.open(
                jid,
                policy.security_layer(password),
                self._peer(policy),
                self.options,
                events,
            )


async def _register(stream: aioxmpp.protocol.XMLStream, to: aioxmpp.JID, query: object, wait: float) -> None:
    """Send the registration IQ and raise the XMPPError of an error reply (aioxmpp.ibr.register swallows it).

    The IQ carries the password: it is sent muted, so the DEBUG wire log shows ``<!-- some bytes omitted -->``.
    """
    iq = aioxmpp.IQ(type_=aioxmpp.IQType.SET, to=to, payload=query)
    iq.autoset_id()
    with stream.mute():
        reply = await aioxmpp.protocol.send_and_wait_for(stream, [iq], [aioxmpp.IQ], timeout=wait)
    if reply.type_ == aioxmpp.IQType.ERROR:
        raise reply.error.to_exception()


async def _close_stream(stream: aioxmpp.protocol.XMLStream) -> None:
    """Send the stream footer and wait (briefly) for the server's; never raises."""
    # aioxmpp creates an error future per stream; retrieve it so it is not reported as "never retrieved".
    error = stream.error_future()
    try:
        await asyncio.wait_for(stream.close_and_wait(), 2.0)
    except (Exception, asyncio.CancelledError):
        stream.abort()
    if error.done() and not error.cancelled():
        error.exception()
    else:
        error.cancel()
