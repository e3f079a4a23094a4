"""rostra-ws against small fake WebSocket servers (wsproto over anyio listeners): framing, close, drop, keepalive.

Decision tested here: a server that breaks the protocol (oversize message, malformed XML) ends the session with ONE
``SessionLost`` carrying ``StreamProtocolError`` (500); requests pending then fail with ``UnreachableError`` (503).
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import pytest
from lxml import etree
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Event,
    Message,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)

from rostra._errors import RequestTimeoutError, UnreachableError
from rostra._transport import SessionLost, TransportEvent, TransportOptions, TransportSession
from rostra_ws import StreamProtocolError
from rostra_ws.transport import WsTransport

pytestmark = pytest.mark.anyio

FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
OPEN = f"<open xmlns='{FRAMING}' from='localhost' id='s1' version='1.0'/>"
FEATURES = "<stream:features xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:client'>{}</stream:features>"
SASL_FEATURES = FEATURES.format(
    "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms>"
)
BIND_FEATURES = FEATURES.format("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>")
JID = "alice@localhost/rostra-1"


class PeerClosed(Exception):
    """The client closed the WebSocket (or the TCP connection)."""


class Peer:
    """The server side of one connection, driven by a test's script."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.ws = WSConnection(ConnectionType.SERVER)
        self.events: deque[Event] = deque()
        self.answer_pings = True
        self.pings = 0
        self.pinged = anyio.Event()
        self.received: list[str] = []
        self.ids: list[str] = []

    async def _event(self) -> Event:
        while not self.events:
            try:
                data = await self.stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                raise PeerClosed from None
            self.ws.receive_data(data)
            self.events.extend(self.ws.events())
        return self.events.popleft()

    async def upgrade(self, subprotocol: str | None = "xmpp", reject: bool = False) -> None:
        request = await self._event()
        assert isinstance(request, Request)
        if reject:
            await self.stream.send(self.ws.send(RejectConnection(status_code=501)))
            return
        await self.stream.send(self.ws.send(AcceptConnection(subprotocol=subprotocol)))

    async def recv(self) -> etree._Element:
        """The next element the client sent (pings answered, or not, on the way)."""
        while True:
            event = await self._event()
            if isinstance(event, TextMessage):
                assert event.message_finished
                self.received.append(event.data)
                element = etree.fromstring(event.data)
                if element.get("id"):
                    self.ids.append(element.get("id"))
                return element
            if isinstance(event, Ping):
                self.pings += 1
                self.pinged.set()
                if self.answer_pings:
                    await self.stream.send(self.ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                if self.ws.state is ConnectionState.REMOTE_CLOSING:
                    await self.stream.send(self.ws.send(event.response()))
                raise PeerClosed

    async def send(self, text: str) -> None:
        await self.stream.send(self.ws.send(Message(data=text)))

    async def close(self, code: int = 1000) -> None:
        await self.stream.send(self.ws.send(CloseConnection(code=code)))

    async def reply(self, iq: etree._Element, payload: str = "", sender: str | None = None) -> None:
        attrs = f" from='{sender}'" if sender else ""
        await self.send(f"<iq xmlns='jabber:client' type='result' id='{iq.get('id')}'{attrs}>{payload}</iq>")

    async def login(self) -> None:
        """RFC 7395 framing, SASL PLAIN, bind, the roster get and the initial presence."""
        await self.upgrade()
        await self.recv()  # <open/>
        await self.send(OPEN)
        await self.send(SASL_FEATURES)
        await self.recv()  # <auth/>
        await self.send("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
        await self.recv()  # <open/> again
        await self.send(OPEN)
        await self.send(BIND_FEATURES)
        bind = await self.recv()
        await self.reply(bind, f"<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>{JID}</jid></bind>")
        roster = await self.recv()
        await self.reply(roster, "<query xmlns='jabber:iq:roster'/>")
        await self.recv()  # the initial presence

    async def drain(self) -> None:
        """Read (answering pings, and ``<close/>`` as Prosody does) until the client goes."""
        try:
            while True:
                if (await self.recv()).tag == f"{{{FRAMING}}}close":
                    await self.send(f"<close xmlns='{FRAMING}'/>")
                    await self.close()
        except PeerClosed:
            pass


Script = Callable[[Peer], Awaitable[None]]


@asynccontextmanager
async def fake_server(script: Script) -> AsyncIterator[tuple[str, list[Peer]]]:
    """A WebSocket server on 127.0.0.1 running ``script`` for each connection; yields its URL and the peers."""
    peers: list[Peer] = []
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def handle(stream: anyio.abc.ByteStream) -> None:
        peer = Peer(stream)
        peers.append(peer)
        try:
            await script(peer)
        except PeerClosed:
            pass
        finally:
            await stream.aclose()

    async with anyio.create_task_group() as group:
        group.start_soon(listener.serve, handle)
        yield f"ws://127.0.0.1:{port}/xmpp-websocket", peers
        group.cancel_scope.cancel()


class Sink:
    def __init__(self) -> None:
        self.events: list[TransportEvent] = []
        self.changed = anyio.Event()

    def __call__(self, event: TransportEvent) -> None:
        self.events.append(event)
        self.changed.set()

    async def lost(self) -> SessionLost:
        while not any(isinstance(e, SessionLost) for e in self.events):
            self.changed = anyio.Event()
            await self.changed.wait()
        return next(e for e in self.events if isinstance(e, SessionLost))


def transport(url: str, **extra: object) -> WsTransport:
    options = TransportOptions(request_timeout=30, connect_timeout=10, extra={"allow_plain": True, **extra})
    return WsTransport(url, options)


@asynccontextmanager
async def session_on(script: Script, **extra: object) -> AsyncIterator[tuple[TransportSession, Sink, list[Peer]]]:
    async with fake_server(script) as (url, peers):
        sink = Sink()
        with anyio.fail_after(10):  # a guard against a hang, not a measurement
            session = await transport(url, **extra).open_session("alice", "secret", sink)
        try:
            yield session, sink, peers
        finally:
            await session.close()


# -- the upgrade ---------------------------------------------------------------------------------------------------


async def test_a_server_that_does_not_confirm_the_subprotocol_is_503() -> None:
    async def script(peer: Peer) -> None:
        await peer.upgrade(subprotocol=None)
        await peer.drain()

    async with fake_server(script) as (url, _):
        with anyio.fail_after(10), pytest.raises(UnreachableError) as caught:
            await transport(url).open_session("alice", "secret", Sink())
    assert caught.value.status_code == 503
    assert "did not accept the xmpp WebSocket subprotocol" in caught.value.message


async def test_a_server_that_refuses_the_upgrade_is_503_naming_the_subprotocol() -> None:
    async def script(peer: Peer) -> None:
        await peer.upgrade(reject=True)

    async with fake_server(script) as (url, _):
        with anyio.fail_after(10), pytest.raises(UnreachableError) as caught:
            await transport(url).register_account("alice", "secret")
    assert "did not accept the xmpp WebSocket subprotocol (HTTP 501" in caught.value.message


# -- the end of a session ---------------------------------------------------------------------------------------------


async def test_a_connection_dropped_while_logging_in_is_503() -> None:
    async def script(peer: Peer) -> None:
        await peer.upgrade()
        await peer.recv()  # <open/>
        await peer.send(OPEN)
        await peer.stream.aclose()

    async with fake_server(script) as (url, _):
        with anyio.fail_after(10), pytest.raises(UnreachableError) as caught:
            await transport(url).open_session("alice", "secret", Sink())
    assert caught.value.status_code == 503


async def test_a_server_close_frame_fails_the_pending_request_at_once_with_503() -> None:
    async def script(peer: Peer) -> None:
        await peer.login()
        await peer.recv()  # the request, never answered
        await peer.close()
        await peer.drain()

    async with session_on(script) as (session, _, _):
        with anyio.fail_after(10), pytest.raises(UnreachableError) as caught:
            await session.get_metadata()  # request_timeout is 30 s: only the loss can end it this soon
    assert caught.value.status_code == 503


async def test_a_server_close_frame_reports_one_session_lost() -> None:
    async def script(peer: Peer) -> None:
        await peer.login()
        await peer.close()
        await peer.drain()

    async with session_on(script) as (session, sink, _):
        with anyio.fail_after(10):
            lost = await sink.lost()
        await session.close()
    assert (lost.error.status_code, sink.events) == (503, [lost])


async def test_a_dropped_connection_fails_the_pending_request_at_once_with_503() -> None:
    async def script(peer: Peer) -> None:
        await peer.login()
        await peer.recv()
        await peer.stream.aclose()

    async with session_on(script) as (session, _, _):
        with anyio.fail_after(10), pytest.raises(UnreachableError) as caught:
            await session.get_metadata()
    assert caught.value.status_code == 503


async def test_a_dropped_connection_reports_one_session_lost() -> None:
    async def script(peer: Peer) -> None:
        await peer.login()
        await peer.stream.aclose()

    async with session_on(script) as (session, sink, _):
        with anyio.fail_after(10):
            lost = await sink.lost()
        await session.close()
    assert (lost.error.status_code, sink.events) == (503, [lost])


async def test_the_servers_close_element_is_answered_with_close() -> None:
    async def script(peer: Peer) -> None:
        await peer.login()
        await peer.send(f"<close xmlns='{FRAMING}'/>")
        answer = await peer.recv()
        assert answer.tag == f"{{{FRAMING}}}close"
        await peer.close()
        await peer.drain()

    async with session_on(script) as (_, sink, peers):
        with anyio.fail_after(10):
            lost = await sink.lost()
    assert (peers[0].received[-1], lost.error.status_code) == (f'<close xmlns="{FRAMING}"/>', 503)


async def test_close_sends_unavailable_presence_then_close_and_reports_nothing() -> None:
    async def script(peer: Peer) -> None:
        await peer.login()
        presence = await peer.recv()
        close = await peer.recv()
        assert (presence.get("type"), close.tag) == ("unavailable", f"{{{FRAMING}}}close")
        await peer.send(f"<close xmlns='{FRAMING}'/>")
        await peer.close()
        await peer.drain()

    async with session_on(script) as (session, sink, peers):
        with anyio.fail_after(10):
            await session.close()
            await session.close()
    assert (peers[0].received[-1], sink.events) == (f'<close xmlns="{FRAMING}"/>', [])


async def test_logout_answers_the_servers_close_frame_with_one_of_its_own() -> None:
    answers: list[int] = []

    async def script(peer: Peer) -> None:
        await peer.login()
        await peer.recv()  # unavailable presence
        await peer.recv()  # <close/>
        # As Prosody does: our <close/> and the close frame in one write, so both arrive in one read.
        closing = peer.ws.send(Message(data=f"<close xmlns='{FRAMING}'/>")) + peer.ws.send(CloseConnection(code=1000))
        await peer.stream.send(closing)
        try:
            while True:
                event = await peer._event()
                if isinstance(event, CloseConnection):
                    answers.append(event.code)
                    return
        except PeerClosed:
            return  # the client dropped TCP without answering

    async with session_on(script) as (session, _, _peers):
        with anyio.fail_after(10):
            await session.close()
    assert answers == [1000]


# -- what the server must not send -------------------------------------------------------------------------------


async def test_an_oversize_message_ends_the_session_with_the_protocol_error() -> None:
    async def script(peer: Peer) -> None:
        await peer.login()
        await peer.send("<message xmlns='jabber:client'><body>" + "x" * 5000 + "</body></message>")
        await peer.drain()

    async with session_on(script, max_message_bytes=4096) as (_, sink, _):
        with anyio.fail_after(10):
            lost = await sink.lost()
    assert (type(lost.error), lost.error.status_code) == (StreamProtocolError, 500)


async def test_malformed_xml_ends_the_session_with_the_protocol_error() -> None:
    async def script(peer: Peer) -> None:
        await peer.login()
        await peer.send("<message xmlns='jabber:client'><body>")
        await peer.drain()

    async with session_on(script) as (_, sink, _):
        with anyio.fail_after(10):
            lost = await sink.lost()
    assert type(lost.error) is StreamProtocolError


async def test_a_protocol_error_fails_the_pending_request_with_503() -> None:
    async def script(peer: Peer) -> None:
        await peer.login()
        await peer.recv()
        await peer.send("<iq xmlns='jabber:client' type='result' id='x'>&xxe;</iq>")
        await peer.drain()

    async with session_on(script) as (session, _, _):
        with anyio.fail_after(10), pytest.raises(UnreachableError) as caught:
            await session.get_metadata()
    assert caught.value.status_code == 503


# -- keepalive ------------------------------------------------------------------------------------------------------


async def test_the_session_sends_websocket_pings() -> None:
    async def script(peer: Peer) -> None:
        await peer.login()
        await peer.drain()

    async with session_on(script, ping_interval=0.05) as (_, sink, peers):
        with anyio.fail_after(10):
            await peers[0].pinged.wait()
    assert (peers[0].pings >= 1, sink.events) == (True, [])


async def test_a_missing_pong_ends_the_session_with_one_session_lost() -> None:
    async def script(peer: Peer) -> None:
        peer.answer_pings = False
        await peer.login()
        await peer.drain()

    async with session_on(script, ping_interval=0.05) as (session, sink, _):
        session._options = TransportOptions(request_timeout=0.2)  # type: ignore[attr-defined]
        with anyio.fail_after(10):
            lost = await sink.lost()
    assert "stopped answering WebSocket pings" in lost.error.message


# -- requests -------------------------------------------------------------------------------------------------------


async def test_a_reply_from_the_wrong_sender_is_ignored() -> None:
    async def script(peer: Peer) -> None:
        await peer.login()
        request = await peer.recv()
        await peer.reply(request, sender="mallory@localhost")
        await peer.drain()

    async with session_on(script) as (session, _, _):
        session._options = TransportOptions(request_timeout=0.3)  # type: ignore[attr-defined]
        with anyio.fail_after(10), pytest.raises(RequestTimeoutError) as caught:
            await session.get_profile("bob@localhost")
    assert caught.value.status_code == 408


async def test_a_reply_from_the_asked_user_is_accepted() -> None:
    async def script(peer: Peer) -> None:
        await peer.login()
        request = await peer.recv()
        await peer.reply(request, "<pubsub xmlns='http://jabber.org/protocol/pubsub'/>", sender="bob@localhost")
        await peer.drain()

    async with session_on(script) as (session, _, _):
        with anyio.fail_after(10):
            profile = await session.get_profile("bob@localhost")
    assert profile.nick_name == ""


async def test_iq_ids_are_unique() -> None:
    async def script(peer: Peer) -> None:
        await peer.login()
        for _ in range(5):
            request = await peer.recv()
            await peer.reply(request, "<query xmlns='jabber:iq:private'/>")
        await peer.drain()

    async with session_on(script) as (session, _, peers):
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                for _ in range(5):
                    group.start_soon(session.get_metadata)
    ids = peers[0].ids
    assert (len(ids), len(set(ids))) == (7, 7)  # bind, roster, and the five requests
