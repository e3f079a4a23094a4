"""``ws://`` and ``wss://``: XMPP over WebSocket (RFC 7395) on wsproto and anyio, under asyncio and trio.

Rules:
- The URL names exactly where to connect (``ws://host:port/path``); the XMPP domain follows the one rule of
  ``rostra_xmpp_common.address`` (``?domain=``, the ``domain`` option, or the host; loopback means ``localhost``).
- ``wss://`` verifies the certificate for the domain against ``ca_file`` (or the system store); one SSL context
  per transport. Plain ``ws://`` to a host that is not loopback needs ``allow_insecure_ws=True``.
- SASL prefers SCRAM; PLAIN only over TLS, or over ``ws://`` on loopback with ``allow_plain=True``.
- Options (Client keyword options, landing in ``options.extra``): ``allow_insecure_ws``, ``allow_plain``,
  ``ping_interval`` (s, default 30), ``max_message_bytes`` (default 1 MiB).
- Registration (XEP-0077) runs on a fresh, unauthenticated connection; errors go through the mapping.
"""

from __future__ import annotations

import ssl
from typing import Any, Final

import anyio
from lxml import etree

from rostra._errors import InvalidInputError, RequestTimeoutError, UnreachableError
from rostra._transport import EventSink, Transport, TransportOptions, TransportSession
from rostra_xmpp_common import mapping
from rostra_xmpp_common.address import is_loopback, parse_server_url
from rostra_xmpp_common.namespaces import NS_BIND, NS_CLIENT
from rostra_xmpp_common.options import CARRIER_OPTIONS, carrier_options

from ._errors import StreamProtocolError
from ._sasl import SaslNegotiation
from ._session import WsSession, new_resource
from ._stream import (
    FeaturesReceived,
    NonzaReceived,
    StanzaReceived,
    StreamClosed,
    StreamErrorReceived,
    StreamEvent,
    StreamOpened,
    XmppWebSocketStream,
)
from ._websocket import WebSocket, WebSocketClosed

__all__ = ["WsTransport"]

Element = Any

_DEFAULT_PORTS: Final = {"ws": 80, "wss": 443}
_CLOSE_TIMEOUT: Final = 2.0


class WsTransport(Transport):
    """XMPP over WebSocket: ``ws://host[:port]/path`` (plain) or ``wss://host[:port]/path`` (TLS)."""

    schemes = ("ws", "wss")
    extra_options = CARRIER_OPTIONS

    def __init__(self, url: str, options: TransportOptions) -> None:
        super().__init__(url, options)
        self._address = parse_server_url(url, _DEFAULT_PORTS, options.extra)
        self._tls = self._address.scheme == "wss"
        loopback = is_loopback(self._address.host)
        self._carrier = carrier_options(options.extra)
        if not self._tls and not loopback and not self._carrier.allow_insecure_ws:
            raise InvalidInputError(
                f"ws:// to {self._address.host!r} would send everything unencrypted: use wss://, or pass "
                "allow_insecure_ws=True to accept that"
            )
        self._plain_allowed = self._tls or (loopback and self._carrier.allow_plain)
        self._max_message_bytes = self._carrier.max_message_bytes
        self._ssl_context: ssl.SSLContext | None = None

    def __repr__(self) -> str:
        return f"WsTransport(url={self.url!r}, domain={self.domain!r})"

    @property
    def domain(self) -> str:
        return self._address.domain

    def _context(self) -> ssl.SSLContext | None:
        """The SSL context of ``wss://`` (built once: loading a CA store is slow); None for ``ws://``."""
        if not self._tls:
            return None
        if self._ssl_context is None:
            if self.options.ssl_context is not None:
                self._ssl_context = self.options.ssl_context
            elif self.options.verify_tls:
                self._ssl_context = ssl.create_default_context(cafile=self.options.ca_file)
            else:  # the caller explicitly opted out of verification
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                self._ssl_context = context
        return self._ssl_context

    def _upload_verify(self) -> ssl.SSLContext | str | bool:
        if not self.options.verify_tls:
            return False
        return self.options.ssl_context or self.options.ca_file or True

    async def _connect(self) -> tuple[WebSocket, XmppWebSocketStream, FeaturesReceived]:
        """A WebSocket with an opened XMPP stream (its first features read). Raises RostraError."""
        try:
            websocket = await WebSocket.connect(
                self._address.host,
                self._address.port,
                self._address.path,
                ssl_context=self._context(),
                tls_hostname=self.domain,
                max_message_bytes=self._max_message_bytes,
            )
        except WebSocketClosed as closed:  # e.g. not a WebSocket endpoint at all: it answers no HTTP upgrade
            raise UnreachableError(
                f"No XMPP WebSocket endpoint at {self.url}: {closed.why}: check the URL's port and path"
            ) from None
        stream = XmppWebSocketStream(self.domain, max_message_bytes=self._max_message_bytes)
        try:
            features = await self._open_stream(websocket, stream)
        except BaseException:
            await websocket.aclose()
            raise
        return websocket, stream, features

    async def _open_stream(self, websocket: WebSocket, stream: XmppWebSocketStream) -> FeaturesReceived:
        await _send_text(websocket, stream.open())
        opened = await _next(websocket, stream)
        if isinstance(opened, StreamErrorReceived):
            raise UnreachableError(
                f"The server at {self._address.host}:{self._address.port} refused the stream for {self.domain!r} "
                f"({opened.condition}): check the domain (?domain= in the URL, or the domain option)"
            )
        _expect(opened, StreamOpened, "<open/>")
        features = await _next(websocket, stream)
        _expect(features, FeaturesReceived, "<stream:features>")
        assert isinstance(features, FeaturesReceived)
        return features

    async def register_account(self, username: str, password: str) -> None:
        """Create the account by XEP-0077 before authentication; see ``Transport.register_account``."""
        try:
            with anyio.fail_after(self.options.connect_timeout):
                websocket, stream, _ = await self._connect()
                try:
                    iq = _iq("set", stream.new_id(), mapping.build_register_query(username, password), self.domain)
                    reply = await _request(websocket, stream, iq, {None, self.domain})
                finally:
                    await _close_politely(websocket, stream)
        except TimeoutError:
            raise RequestTimeoutError("register: no answer from the server in time") from None
        if reply.get("type") == "error":
            raise mapping.error_from_stanza_error(reply.find(f"{{{NS_CLIENT}}}error"), operation="register")

    async def open_session(self, username: str, password: str, events: EventSink) -> TransportSession:
        """Log in with SASL (SCRAM first), restart the stream and bind; see ``Transport.open_session``."""
        try:
            with anyio.fail_after(self.options.connect_timeout):
                websocket, stream, features = await self._connect()
                try:
                    features = await self._login(websocket, stream, features, username, password)
                    full_jid = await _bind(websocket, stream, features)
                except BaseException:
                    await websocket.aclose()
                    raise
                session = WsSession(websocket, stream, full_jid, self.options, events, ssl_verify=self._upload_verify())
                await session.start()
                return session
        except TimeoutError:
            raise RequestTimeoutError("connect: no answer from the server in time") from None

    async def _login(
        self,
        websocket: WebSocket,
        stream: XmppWebSocketStream,
        features: FeaturesReceived,
        username: str,
        password: str,
    ) -> FeaturesReceived:
        """SASL on the opened stream, then the stream restart; returns the new features."""
        negotiation = SaslNegotiation(username, password, features.mechanisms, plain_allowed=self._plain_allowed)
        await _send_text(websocket, stream.send(negotiation.start()))
        while True:
            event = await _next(websocket, stream)
            _expect(event, NonzaReceived, "a SASL answer")
            assert isinstance(event, NonzaReceived)
            response = negotiation.receive(event.element)
            if response is None:
                break
            await _send_text(websocket, stream.send(response))
        return await self._open_stream(websocket, stream)

    async def aclose(self) -> None:
        self._ssl_context = None


async def _send_text(websocket: WebSocket, text: str) -> None:
    try:
        await websocket.send_text(text)
    except WebSocketClosed as closed:
        raise UnreachableError(f"The connection to the XMPP server was lost ({closed.why})") from None


async def _next(websocket: WebSocket, stream: XmppWebSocketStream) -> StreamEvent:
    """The next stream event; the connection's end is ``UnreachableError``, garbage ``StreamProtocolError``."""
    try:
        message = await websocket.receive()
    except WebSocketClosed as closed:
        raise UnreachableError(f"The connection to the XMPP server was lost while connecting ({closed.why})") from None
    return stream.receive(message)


def _expect(event: StreamEvent, kind: type[Any], what: str) -> None:
    if not isinstance(event, kind):
        raise StreamProtocolError(f"The server sent {type(event).__name__} where {what} belongs: connection closed")


def _iq(type_: str, iq_id: str, payload: Element, to: str | None = None) -> Element:
    iq = etree.Element(f"{{{NS_CLIENT}}}iq", {"type": type_, "id": iq_id}, nsmap={None: NS_CLIENT})
    if to is not None:
        iq.set("to", to)
    iq.append(payload)
    return iq


async def _request(websocket: WebSocket, stream: XmppWebSocketStream, iq: Element, senders: set[str | None]) -> Element:
    """Send ``iq`` during the handshake and return its reply (id AND sender match); other stanzas are skipped."""
    await _send_text(websocket, stream.send(iq))
    while True:
        event = await _next(websocket, stream)
        if isinstance(event, StreamErrorReceived | StreamClosed):
            raise UnreachableError("The XMPP server ended the stream while connecting: retry later")
        if not isinstance(event, StanzaReceived):
            continue
        reply = event.element
        sender = reply.get("from")
        if (
            reply.tag == f"{{{NS_CLIENT}}}iq"
            and reply.get("id") == iq.get("id")
            and reply.get("type") in ("result", "error")
            and (sender.lower() if sender else None) in senders
        ):
            return reply


async def _bind(websocket: WebSocket, stream: XmppWebSocketStream, features: FeaturesReceived) -> str:
    """Bind a resource of our own; returns the full JID the server assigned."""
    if not features.can_bind:
        raise StreamProtocolError("The server offered no resource binding after login: connection closed")
    bind = etree.Element(f"{{{NS_BIND}}}bind", nsmap={None: NS_BIND})
    etree.SubElement(bind, f"{{{NS_BIND}}}resource").text = new_resource()
    reply = await _request(websocket, stream, _iq("set", stream.new_id(), bind), {None, stream.domain})
    if reply.get("type") == "error":
        raise mapping.error_from_stanza_error(reply.find(f"{{{NS_CLIENT}}}error"), operation="connect")
    jid = reply.findtext(f"{{{NS_BIND}}}bind/{{{NS_BIND}}}jid")
    if not jid or "@" not in jid:
        raise StreamProtocolError("The server bound no JID: connection closed")
    return str(jid)


async def _close_politely(websocket: WebSocket, stream: XmppWebSocketStream) -> None:
    """Send ``<close/>``, wait (briefly) for the server's close, then close the socket. Never raises."""
    with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_TIMEOUT):
        try:
            await websocket.send_text(stream.close())
            while True:
                message = await websocket.receive()
                if isinstance(stream.receive(message), StreamClosed):
                    await websocket.close()
        except (WebSocketClosed, StreamProtocolError):
            pass
    await websocket.aclose()
