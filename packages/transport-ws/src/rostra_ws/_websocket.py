"""The WebSocket connection of ``ws://`` and ``wss://``: wsproto (sans-IO) driven over an anyio byte stream.

Rules:
- One connection carries RFC 7395 traffic: the subprotocol ``xmpp`` is requested and MUST be confirmed, else the
  connection is refused with ``UnreachableError``. Every message sent is one complete text frame.
- Exactly one task reads (``receive``); any task may send (a lock keeps frames whole). Server pings are answered,
  pongs are noted for ``ping``; fragments are joined, and a message over the size cap is a protocol error.
- The end of the connection (close frame, EOF, reset) is ``WebSocketClosed`` from ``receive``, raised once the close
  handshake is answered; library exceptions (wsproto, OSError, ssl) never leave this module untranslated.
"""

from __future__ import annotations

import contextlib
import ssl
from collections import deque
from typing import Final

import anyio
import anyio.abc
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from rostra._errors import UnreachableError

from ._errors import StreamProtocolError

__all__ = ["SUBPROTOCOL", "WebSocket", "WebSocketClosed"]

SUBPROTOCOL: Final = "xmpp"
_READ_SIZE: Final = 65536
_NORMAL_CLOSURE: Final = 1000


class WebSocketClosed(Exception):
    """The WebSocket connection ended; ``why`` says how, in words fit for an error message."""

    def __init__(self, why: str, code: int | None = None) -> None:
        super().__init__(why)
        self.why = why
        self.code = code


class WebSocket:
    """A client WebSocket connection carrying text messages. Build it with ``await WebSocket.connect(...)``."""

    def __init__(self, stream: anyio.abc.ByteStream, connection: WSConnection, max_message_bytes: int) -> None:
        self._stream = stream
        self._ws = connection
        self._max = max_message_bytes
        self._events: deque[Event] = deque()
        self._parts: list[str] = []
        self._size = 0
        # fast_acquire: an uncontended send does not yield here (the socket's send still checkpoints).
        self._send_lock = anyio.Lock(fast_acquire=True)
        self._pong = anyio.Event()
        self._pings = 0
        self._closed: WebSocketClosed | None = None

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        path: str,
        *,
        ssl_context: ssl.SSLContext | None,
        tls_hostname: str,
        max_message_bytes: int,
    ) -> WebSocket:
        """Open TCP (and TLS when ``ssl_context`` is given) and do the WebSocket upgrade asking for ``xmpp``.

        Raises ``UnreachableError`` (no connection, certificate refused, upgrade refused, subprotocol not
        confirmed). The caller bounds the time (``anyio.fail_after``); cancellation closes the socket.
        """
        where = f"{host}:{port}"
        try:
            if ssl_context is None:
                stream: anyio.abc.ByteStream = await anyio.connect_tcp(host, port)
            else:
                stream = await anyio.connect_tcp(
                    host, port, ssl_context=ssl_context, tls_hostname=tls_hostname, tls_standard_compatible=False
                )
        except ssl.SSLCertVerificationError:
            raise UnreachableError(
                f"The server's TLS certificate failed verification for {tls_hostname!r}: pass the ca_file option "
                "with the CA that signed it (or fix the server's certificate)"
            ) from None
        except (OSError, anyio.BrokenResourceError, ssl.SSLError) as exc:
            raise UnreachableError(
                f"Cannot reach the WebSocket server at {where} ({type(exc).__name__}): check the server URL and "
                "that the server is running"
            ) from None
        websocket = cls(stream, WSConnection(ConnectionType.CLIENT), max_message_bytes)
        try:
            await websocket._upgrade(_host_header(host, port, ssl_context is not None), path, where)
        except BaseException:
            await websocket.aclose()
            raise
        return websocket

    async def _upgrade(self, host_header: str, path: str, where: str) -> None:
        await self._write(self._ws.send(Request(host=host_header, target=path, subprotocols=[SUBPROTOCOL])))
        while True:
            event = await self._next_event(where)
            if isinstance(event, AcceptConnection):
                if event.subprotocol != SUBPROTOCOL:
                    raise UnreachableError(
                        f"The server at {where} did not accept the xmpp WebSocket subprotocol: is {path!r} its "
                        "XMPP-over-WebSocket endpoint (RFC 7395)?"
                    )
                return
            if isinstance(event, RejectConnection):
                raise UnreachableError(
                    f"The server at {where} did not accept the xmpp WebSocket subprotocol (HTTP "
                    f"{event.status_code} to the upgrade of {path!r}): check the URL's path"
                )
            if not isinstance(event, RejectData):
                raise UnreachableError(f"The server at {where} broke the WebSocket upgrade ({type(event).__name__})")

    # -- reading -------------------------------------------------------------------------------------------------

    async def _next_event(self, where: str) -> Event:
        """The next wsproto event, reading from the socket as needed. Raises ``WebSocketClosed`` at EOF/reset."""
        while not self._events:
            try:
                data: bytes | None = await self._stream.receive(_READ_SIZE)
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                data = None
            try:
                self._ws.receive_data(data)
                self._events.extend(self._ws.events())
            except RemoteProtocolError as exc:
                raise self._end(f"the server at {where} broke the WebSocket protocol ({exc})") from None
            if data is None and not self._events:
                raise self._end("the server dropped the connection")
        return self._events.popleft()

    async def receive(self) -> str:
        """The next complete text message. Raises ``WebSocketClosed`` when the connection ends (the server's close
        is answered first) and ``StreamProtocolError`` for a binary message or one over the size cap."""
        if self._closed is not None:
            raise self._closed
        while True:
            event = await self._next_event("the server")
            if isinstance(event, TextMessage):
                self._size += len(event.data)
                if self._size > self._max:
                    raise StreamProtocolError(
                        f"The server sent a WebSocket message over {self._max} bytes: the session cannot go on"
                    )
                self._parts.append(event.data)
                if event.message_finished:
                    text, self._parts, self._size = "".join(self._parts), [], 0
                    return text
            elif isinstance(event, BytesMessage):
                raise StreamProtocolError("The server sent a binary WebSocket message: RFC 7395 allows text only")
            elif isinstance(event, Ping):
                await self._send_quietly(event.response())
            elif isinstance(event, Pong):
                self._pong.set()
            elif isinstance(event, CloseConnection):
                if self._ws.state is ConnectionState.REMOTE_CLOSING:
                    # wsproto counts the answer as sent once made: it must reach the wire even if we are cancelled.
                    with anyio.CancelScope(shield=True):
                        await self._send_quietly(event.response())
                why = "the server closed the WebSocket" + (f" ({event.code})" if event.code != _NORMAL_CLOSURE else "")
                raise self._end(why, event.code)

    def _end(self, why: str, code: int | None = None) -> WebSocketClosed:
        if self._closed is None:
            self._closed = WebSocketClosed(why, code)
        return self._closed

    # -- writing -------------------------------------------------------------------------------------------------

    async def _write(self, data: bytes) -> None:
        async with self._send_lock:
            try:
                await self._stream.send(data)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                raise self._end("the connection to the server was lost") from None

    async def _send_quietly(self, event: Event) -> None:
        with contextlib.suppress(WebSocketClosed, LocalProtocolError):
            await self._write(self._ws.send(event))

    async def send_text(self, text: str) -> None:
        """Send ``text`` as one text frame. Raises ``WebSocketClosed`` if the connection is gone."""
        if self._closed is not None:
            raise self._closed
        try:
            data = self._ws.send(Message(data=text))
        except LocalProtocolError:
            raise self._end("the WebSocket is closing") from None
        await self._write(data)

    async def ping(self, timeout: float) -> bool:  # noqa: ASYNC109 - the pong wait is part of the contract
        """Send a WebSocket ping; True once a pong arrived within ``timeout`` s (the reader must be running)."""
        self._pong = anyio.Event()
        self._pings += 1
        try:
            await self._write(self._ws.send(Ping(payload=self._pings.to_bytes(4, "big"))))
        except (WebSocketClosed, LocalProtocolError):
            return False
        with anyio.move_on_after(timeout):
            await self._pong.wait()
            return True
        return False

    async def close(self) -> None:
        """Send our close frame (1000): to start the closing handshake, or to answer the server's close frame
        when it has already arrived (even if the reader, now stopped, never handed it on; RFC 6455 5.5.1)."""
        if self._ws.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            await self._send_quietly(CloseConnection(code=_NORMAL_CLOSURE))

    async def aclose(self) -> None:
        """Close the socket at once. Never raises."""
        self._end("the connection was closed")
        with anyio.CancelScope(shield=True):
            with contextlib.suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                await self._stream.aclose()


def _host_header(host: str, port: int, tls: bool) -> str:
    name = f"[{host}]" if ":" in host else host
    return name if port == (443 if tls else 80) else f"{name}:{port}"
