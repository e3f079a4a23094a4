"""The floor of the WebSocket benchmark: one IQ over a bare wsproto connection, with no SDK around it.

Logging in reuses rostra-ws's sans-IO stream and SASL (setup, not timed). The timed call sends a pre-serialized
IQ text frame and waits for the text frame that carries its id: no parsing, no schemas, no state machine.
"""

from __future__ import annotations

import itertools
from typing import Any

import anyio
import anyio.abc
from lxml import etree
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Ping, Request, TextMessage

from rostra_ws._sasl import SaslNegotiation
from rostra_ws._stream import FeaturesReceived, NonzaReceived, StanzaReceived, XmppWebSocketStream
from rostra_xmpp_common import mapping


class BareWebSocketClient:
    def __init__(self, socket: anyio.abc.SocketStream, domain: str) -> None:
        self._socket = socket
        self._ws = WSConnection(ConnectionType.CLIENT)
        self._xmpp = XmppWebSocketStream(domain)
        self._pending: list[str] = []
        self._ids = itertools.count()
        self.jid = ""

    @classmethod
    async def login(cls, host: str, port: int, path: str, domain: str, username: str, password: str) -> Any:
        client = cls(await anyio.connect_tcp(host, port), domain)
        await client._socket.send(client._ws.send(Request(host=f"{host}:{port}", target=path, subprotocols=["xmpp"])))
        while not any(isinstance(event, AcceptConnection) for event in await client._events()):
            pass
        await client._send(client._xmpp.open())
        features = await client._until(FeaturesReceived)
        sasl = SaslNegotiation(username, password, features.mechanisms, plain_allowed=False)
        reply: Any = sasl.start()
        while reply is not None:
            await client._send(client._xmpp.send(reply))
            reply = sasl.receive((await client._until(NonzaReceived)).element)
        await client._send(client._xmpp.open())
        await client._until(FeaturesReceived)
        bind = etree.Element("iq", type="set", id="bind")
        etree.SubElement(bind, "{urn:ietf:params:xml:ns:xmpp-bind}bind")
        await client._send(client._xmpp.send(bind))
        bound = (await client._until(StanzaReceived)).element
        client.jid = bound.findtext(".//{urn:ietf:params:xml:ns:xmpp-bind}jid")
        return client

    def profile_request_template(self, to: str) -> str:
        """The same PEP items request Rostra sends, serialized once, with ``{id}`` left to fill in."""
        iq = etree.Element("iq", type="get", to=to, id="ID-PLACEHOLDER")
        iq.append(mapping.build_profile_items_request())
        return self._xmpp.send(iq).replace("ID-PLACEHOLDER", "{id}")

    async def call(self, template: str) -> str:
        """Send one request and return the text of the reply with its id (the floor: nothing else is done)."""
        ident = f"floor{next(self._ids)}"
        marker = f"id='{ident}'"
        marker2 = f'id="{ident}"'
        await self._send(template.format(id=ident))
        while True:
            for text in self._pending:
                if marker in text or marker2 in text:
                    self._pending.clear()
                    return text
            self._pending.clear()
            for event in await self._events():
                if isinstance(event, TextMessage):
                    self._pending.append(event.data)

    async def aclose(self) -> None:
        await self._socket.aclose()

    async def _send(self, text: str) -> None:
        await self._socket.send(self._ws.send(TextMessage(data=text)))

    async def _events(self) -> list[Any]:
        self._ws.receive_data(await self._socket.receive())
        events = list(self._ws.events())
        for event in events:
            if isinstance(event, Ping):
                await self._socket.send(self._ws.send(event.response()))
        return events

    async def _until(self, kind: type) -> Any:
        while True:
            for event in await self._events():
                if isinstance(event, TextMessage):
                    parsed = self._xmpp.receive(event.data)
                    if isinstance(parsed, kind):
                        return parsed
