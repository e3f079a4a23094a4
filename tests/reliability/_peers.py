"""Fake peers for the fault tests: a TCP proxy in front of the suite's XMPP server that can go silent, and helpers
to see that nothing was left behind.

``Proxy`` listens on 127.0.0.1 (TLS verifies the name ``localhost``, so it is transparent to xmpp:// and ws://)
and forwards each connection to the real server. Its ``mode`` decides what the client receives:
- ``"pass"``: everything, both ways;
- ``"silent"``: nothing at all (the TCP connection is accepted, the server's bytes are held): a server that never
  sends its stream header, or a WebSocket endpoint that completes nothing;
- ``"after-upgrade"``: the server's HTTP response (the WebSocket handshake) and then nothing: a WebSocket server
  that never sends ``<open/>``.
``freeze()`` / ``thaw()`` hold and release the server-to-client bytes of connections already open (a server that
stops answering after login). Held bytes are delivered in order on thaw, late. ``cut()`` closes every open
connection at once, as a dropped network would; ``opened`` counts the connections accepted.

Everything is anyio, so the proxy runs under asyncio and trio. The tests import it by name (``from _peers import``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ssl
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Literal

import anyio
import anyio.abc
import sniffio
from anyio.streams.tls import TLSStream
from lxml import etree
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import AcceptConnection, CloseConnection, Event, Message, Ping, Request, TextMessage

import rostra
from _cases import Statuses
from _prosody import XmppServer

Mode = Literal["pass", "silent", "after-upgrade"]
_HEADERS_END = b"\r\n\r\n"


class Proxy:
    """A TCP proxy to ``target_host:target_port`` with switchable silence; see the module docstring."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.mode: Mode = "pass"
        self.opened = 0  # client connections accepted
        self.closed = 0  # client connections that ended (the client closed or reset them)
        self.held_bytes = 0  # server-to-client bytes held back so far (delivered late, or dropped at close)
        self.sent_bytes = 0  # client-to-server bytes forwarded so far: what the client sent
        self._thawed = anyio.Event()
        self._thawed.set()
        self._changed = anyio.Event()
        self._open: set[anyio.CancelScope] = set()  # one per forwarding connection: what cut() cancels

    def url(self, scheme: str, path: str = "") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def freeze(self) -> None:
        """Stop forwarding server-to-client bytes on every open connection (they are held, not dropped)."""
        if self._thawed.is_set():
            self._thawed = anyio.Event()

    def thaw(self) -> None:
        """Deliver the held bytes and forward again."""
        self._thawed.set()

    def cut(self) -> int:
        """Close every open forwarding connection (both sides); returns how many there were."""
        scopes, self._open = self._open, set()
        for scope in scopes:
            scope.cancel()
        return len(scopes)

    async def wait_all_closed(self) -> None:
        """Return once every accepted client connection has ended (the caller bounds the wait)."""
        while self.closed < self.opened:
            self._changed = anyio.Event()
            await self._changed.wait()

    async def _handle(self, client: anyio.abc.SocketStream) -> None:
        self.opened += 1
        mode = self.mode  # a connection keeps the mode it was accepted in
        try:
            async with client:
                if mode == "silent":
                    await _drain(client)  # read and drop until the client goes; send nothing
                    return
                try:
                    upstream = await anyio.connect_tcp(*self.target)
                except OSError:
                    return
                async with upstream, anyio.create_task_group() as group:
                    self._open.add(group.cancel_scope)

                    async def to_server() -> None:
                        await _pump(client, upstream, self)
                        group.cancel_scope.cancel()

                    group.start_soon(to_server)
                    await self._to_client(upstream, client, mode)
                    group.cancel_scope.cancel()
                self._open.discard(group.cancel_scope)
        finally:
            self.closed += 1
            self._changed.set()

    async def _to_client(self, upstream: anyio.abc.SocketStream, client: anyio.abc.SocketStream, mode: Mode) -> None:
        headers_done = mode == "pass"
        while True:
            try:
                data = await upstream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                return
            if not headers_done:  # "after-upgrade": forward the HTTP response, hold the rest for ever
                head, end, rest = data.partition(_HEADERS_END)
                if end:
                    headers_done = True
                    await _send(client, head + end)
                    self.held_bytes += len(rest)
                else:
                    await _send(client, data)
                if headers_done:
                    await _drain(upstream, count=self)  # the client waits for <open/> that never comes
                    return
                continue
            if not self._thawed.is_set():
                self.held_bytes += len(data)
                await self._thawed.wait()
            if not await _send(client, data):
                return


async def _send(stream: anyio.abc.SocketStream, data: bytes) -> bool:
    try:
        await stream.send(data)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        return False
    return True


async def _pump(source: anyio.abc.SocketStream, sink: anyio.abc.SocketStream, proxy: Proxy) -> None:
    while True:
        try:
            data = await source.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            return
        proxy.sent_bytes += len(data)
        if not await _send(sink, data):
            return


async def _drain(stream: anyio.abc.SocketStream, count: Proxy | None = None) -> None:
    while True:
        try:
            data = await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            return
        if count is not None:
            count.held_bytes += len(data)


@asynccontextmanager
async def proxy_to(host: str, port: int) -> AsyncIterator[Proxy]:
    """A running ``Proxy`` to ``host:port`` (its ``port`` set); stopped, with every connection, on exit."""
    proxy = Proxy(host, port)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    proxy.port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def serve(*, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await listener.serve(proxy._handle)

    async with anyio.create_task_group() as group:
        await group.start(serve)  # running before the test looks at the tasks
        try:
            yield proxy
        finally:
            proxy.thaw()
            group.cancel_scope.cancel()


def host_port(url: str) -> tuple[str, int, str]:
    """``(host, port, path)`` of a server URL such as ``ws://127.0.0.1:5280/xmpp-websocket``."""
    rest = url.partition("://")[2]
    address, slash, path = rest.partition("/")
    host, _, port = address.rpartition(":")
    return host, int(port), slash + path


# -- what is left behind --------------------------------------------------------------------------------------------


def live_tasks() -> set[object]:
    """The tasks of the running event loop that have not finished (asyncio tasks, or every trio task)."""
    if sniffio.current_async_library() == "trio":
        import trio

        found: set[object] = set()
        todo = [trio.lowlevel.current_root_task()]
        while todo:
            task = todo.pop()
            found.add(task)
            for nursery in task.child_nurseries:
                todo.extend(nursery.child_tasks)
        return found
    return {task for task in asyncio.all_tasks() if not task.done()}


async def wait_no_new_tasks(before: set[object], limit: float = 5.0) -> set[object]:
    """Wait (at most ``limit`` s) until no task outside ``before`` is alive; returns the ones still alive."""
    with anyio.move_on_after(limit):
        while live_tasks() - before:  # noqa: ASYNC110 - no event tells when a task ends: polled
            await anyio.sleep(0.02)
    return live_tasks() - before


# -- clients on the suite's server ----------------------------------------------------------------------------------


@dataclass
class Account:
    username: str
    password: str
    jid: str


@dataclass
class Clients:
    """Clients on the suite's server, directly (``direct_url``) or through ``proxy`` (``proxy_url``), all closed
    with ``stack``."""

    server: XmppServer
    kind: str  # "xmpp" or "ws"
    proxy: Proxy
    stack: AsyncExitStack

    @property
    def direct_url(self) -> str:
        return self.server.xmpp_url if self.kind == "xmpp" else self.server.ws_url

    @property
    def proxy_url(self) -> str:
        return self.proxy.url(self.kind, host_port(self.direct_url)[2])

    async def client(self, url: str, **options: object) -> rostra.Client:
        return await self.stack.enter_async_context(rostra.Client(url, ca_file=str(self.server.ca_file), **options))

    async def account(self, name: str = "") -> Account:
        """A fresh account (registered directly, not through the proxy), with ``name`` as its profile name."""
        sdk = await self.client(self.direct_url)
        data = (await sdk.register(f"t{uuid.uuid4().hex}")).data
        if name:
            await sdk.connect(data.username, data.password)
            await sdk.set_user_profile(name=name)
            await sdk.logout()
        return Account(data.username, data.password, data.user_jid)

    async def connected(self, account: Account, url: str | None = None, **options: object) -> rostra.Client:
        sdk = await self.client(url or self.direct_url, **options)
        await sdk.connect(account.username, account.password)
        return sdk


@asynccontextmanager
async def clients_on(server: XmppServer, kind: str) -> AsyncIterator[Clients]:
    host, port, _ = host_port(server.xmpp_url if kind == "xmpp" else server.ws_url)
    async with proxy_to(host, port) as proxy, AsyncExitStack() as stack:
        yield Clients(server, kind, proxy, stack)


def statuses(sdk: rostra.Client) -> Statuses:
    """Every status the connection listeners of ``sdk`` see from now on (the suite's one recorder)."""
    return Statuses(sdk)


# -- a scripted XMPP-over-WebSocket server (plaintext: everything it sends is the test's choice) -------------------

FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
WS_OPEN = f"<open xmlns='{FRAMING}' from='localhost' id='s1' version='1.0'/>"
_WS_FEATURES = (
    "<stream:features xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:client'>{}</stream:features>"
)
_SASL = "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms>"
_BIND = "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
PEER_JID = "alice@localhost"


class WsPeerClosed(Exception):
    """The client closed the WebSocket (or the TCP connection)."""


class WsPeer:
    """The server side of one WebSocket connection, driven by a test's script (wsproto over an anyio stream)."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.ws = WSConnection(ConnectionType.SERVER)
        self._events: deque[Event] = deque()

    async def _event(self) -> Event:
        while not self._events:
            try:
                data = await self.stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                raise WsPeerClosed from None
            self.ws.receive_data(data)
            self._events.extend(self.ws.events())
        return self._events.popleft()

    async def recv(self) -> etree._Element:
        """The next element the client sent (pings answered on the way)."""
        while True:
            event = await self._event()
            if isinstance(event, Request):
                await self.stream.send(self.ws.send(AcceptConnection(subprotocol="xmpp")))
            elif isinstance(event, TextMessage):
                return etree.fromstring(event.data)
            elif isinstance(event, Ping):
                await self.stream.send(self.ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                if self.ws.state is ConnectionState.REMOTE_CLOSING:
                    await self.stream.send(self.ws.send(event.response()))
                raise WsPeerClosed

    async def send(self, text: str) -> None:
        await self.stream.send(self.ws.send(Message(data=text)))

    async def send_frame(self, opcode: int, payload: bytes) -> None:
        """One raw, final, unmasked frame (a server's frames are unmasked): what wsproto would refuse to make."""
        assert len(payload) < 126
        await self.stream.send(bytes([0x80 | opcode, len(payload)]) + payload)

    async def reply(self, iq: etree._Element, payload: str = "") -> None:
        await self.send(f"<iq xmlns='jabber:client' type='result' id='{iq.get('id')}'>{payload}</iq>")

    async def login(self) -> None:
        """RFC 7395 framing, SASL PLAIN (any password), bind, the roster get and the initial presence."""
        await self.recv()  # <open/>
        await self.send(WS_OPEN)
        await self.send(_WS_FEATURES.format(_SASL))
        await self.recv()  # <auth/>
        await self.send("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
        await self.recv()  # <open/> again
        await self.send(WS_OPEN)
        await self.send(_WS_FEATURES.format(_BIND))
        bind = await self.recv()
        await self.reply(bind, f"<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>{PEER_JID}/r1</jid></bind>")
        await self.reply(await self.recv(), "<query xmlns='jabber:iq:roster'/>")
        await self.recv()  # the initial presence

    async def serve(self) -> None:
        """Answer every IQ with an empty result and ``<close/>`` as Prosody does, until the client goes."""
        while True:
            element = await self.recv()
            if element.tag == f"{{{FRAMING}}}close":
                await self.send(f"<close xmlns='{FRAMING}'/>")
                await self.stream.send(self.ws.send(CloseConnection(code=1000)))
            elif element.tag == "{jabber:client}iq" and element.get("type") in ("get", "set"):
                await self.reply(element)


WsScript = Callable[[WsPeer], Awaitable[None]]


@asynccontextmanager
async def ws_peer(first: WsScript) -> AsyncIterator[tuple[str, list[WsPeer]]]:
    """A WebSocket XMPP server on 127.0.0.1: ``first`` runs the first connection, later ones (a reconnect) log in
    and are served. Yields its ws:// URL and the peers."""
    peers: list[WsPeer] = []
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def later(peer: WsPeer) -> None:
        await peer.login()
        await peer.serve()

    async def handle(stream: anyio.abc.ByteStream) -> None:
        peer = WsPeer(stream)
        peers.append(peer)
        try:
            await (first if len(peers) == 1 else later)(peer)
        except (WsPeerClosed, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        finally:
            await stream.aclose()

    async def serve(*, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await listener.serve(handle)

    async with anyio.create_task_group() as group:
        await group.start(serve)
        try:
            yield f"ws://127.0.0.1:{port}/xmpp-websocket", peers
        finally:
            group.cancel_scope.cancel()


@contextmanager
def loop_errors() -> Iterator[list[str]]:
    """What the asyncio loop's exception handler receives meanwhile ("Task exception was never retrieved"...), as
    messages; under trio an escaping error ends the run instead, so the list stays empty."""
    found: list[str] = []
    if sniffio.current_async_library() != "asyncio":
        yield found
        return
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: found.append(str(context.get("message"))))
    try:
        yield found
        gc.collect()  # futures and tasks report a lost exception when they are collected
    finally:
        loop.set_exception_handler(previous)


# -- a scripted XMPP server over TCP with STARTTLS (the suite's certificate, so the client verifies it) ------------

_STREAM = "http://etherx.jabber.org/streams"
_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
XMPP_HEADER = (
    f"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='{_STREAM}' from='localhost' "
    "id='s{n}' version='1.0'>"
)


class XmppPeer:
    """The server side of one c2s connection, driven by a test's script: STARTTLS, SASL PLAIN (any password),
    bind, then every IQ answered with an empty result (a roster get with an empty roster) unless the script says."""

    def __init__(self, stream: anyio.abc.ByteStream, tls: ssl.SSLContext) -> None:
        self.stream = stream
        self._tls = tls
        self._restarts = 0
        self._reset()

    def _reset(self) -> None:
        self._parser = etree.XMLPullParser(events=("start", "end"), resolve_entities=False, no_network=True)
        self._depth = 0
        self._ready: deque[etree._Element] = deque()

    async def _header(self, before: str = "") -> None:
        self._restarts += 1
        await self.send(before + XMPP_HEADER.format(n=self._restarts))

    async def recv(self) -> etree._Element:
        """The next top-level element (a stanza or nonza) the client sent; its stream header is skipped."""
        while not self._ready:
            try:
                data = await self.stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                raise WsPeerClosed from None
            self._parser.feed(data)
            for kind, element in self._parser.read_events():
                self._depth += 1 if kind == "start" else -1
                if kind == "end" and self._depth == 1:
                    self._ready.append(element)
                elif kind == "end" and self._depth == 0:
                    raise WsPeerClosed  # the client's </stream:stream>
        return self._ready.popleft()

    async def send(self, text: str) -> None:
        await self.stream.send(text.encode())

    async def reply(self, iq: etree._Element, payload: str = "", type_: str = "result") -> None:
        await self.send(f"<iq type='{type_}' id='{iq.get('id')}'>{payload}</iq>")

    async def login(self, *, last_header_prefix: str = "") -> None:
        """Up to the bound, established session; ``last_header_prefix`` goes before the header after SASL."""
        await self.recv_header()
        await self._header()
        await self.send(f"<stream:features><starttls xmlns='{_TLS}'><required/></starttls></stream:features>")
        await self.recv()  # <starttls/>
        await self.send(f"<proceed xmlns='{_TLS}'/>")
        self.stream = await TLSStream.wrap(self.stream, server_side=True, ssl_context=self._tls)
        self._reset()
        await self.recv_header()
        await self._header()
        await self.send(
            "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism>"
            "</mechanisms></stream:features>"
        )
        await self.recv()  # <auth/>
        await self.send("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
        self._reset()
        await self.recv_header()
        await self._header(last_header_prefix)
        await self.send("<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>")
        bind = await self.recv()
        await self.reply(bind, f"<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>{PEER_JID}/r1</jid></bind>")

    async def recv_header(self) -> None:
        while self._depth == 0:
            try:
                data = await self.stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                raise WsPeerClosed from None
            self._parser.feed(data)
            for kind, element in self._parser.read_events():
                self._depth += 1 if kind == "start" else -1
                if kind == "end" and self._depth == 1:
                    self._ready.append(element)

    async def answer(self, element: etree._Element) -> None:
        """The default answer: an IQ get/set gets an empty result (an empty roster for a roster get)."""
        if element.tag == "{jabber:client}iq" and element.get("type") in ("get", "set"):
            roster = len(element) and element[0].tag == "{jabber:iq:roster}query"
            await self.reply(element, "<query xmlns='jabber:iq:roster'/>" if roster else "")

    async def serve_until(self, wanted: Callable[[etree._Element], bool]) -> etree._Element:
        """Answer everything by default until the client sends an element ``wanted`` accepts; return it."""
        while True:
            element = await self.recv()
            if wanted(element):
                return element
            await self.answer(element)

    async def serve(self) -> None:
        while True:
            await self.answer(await self.recv())


XmppScript = Callable[[XmppPeer], Awaitable[None]]


@asynccontextmanager
async def xmpp_peer(server: XmppServer, script: XmppScript) -> AsyncIterator[tuple[str, list[XmppPeer]]]:
    """An XMPP server on 127.0.0.1 with the suite's certificate, running ``script`` for every connection."""
    certs = server.ca_file.parent
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(certs / "server.crt", certs / "server.key")
    peers: list[XmppPeer] = []
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def handle(stream: anyio.abc.ByteStream) -> None:
        peer = XmppPeer(stream, tls)
        peers.append(peer)
        try:
            await script(peer)
        except (WsPeerClosed, anyio.BrokenResourceError, anyio.ClosedResourceError, ssl.SSLError, etree.XMLSyntaxError):
            pass
        except OSError:
            pass
        finally:
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, ssl.SSLError, OSError):
                await peer.stream.aclose()  # the client may be gone without a TLS close_notify

    async def serve(*, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await listener.serve(handle)

    async with anyio.create_task_group() as group:
        await group.start(serve)
        try:
            yield f"xmpp://127.0.0.1:{port}", peers
        finally:
            group.cancel_scope.cancel()
