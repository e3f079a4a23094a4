"""What only the ws:// transport does; what it shares with xmpp:// is in tests/transports."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from _prosody import XmppServer
from _transport_helpers import Login, logins
from rostra._errors import InvalidInputError, UnreachableError
from rostra._transport import TransportOptions
from rostra_ws.transport import WsTransport


@pytest.fixture
async def login(xmpp_server: XmppServer) -> AsyncIterator[Login]:
    transport = WsTransport(xmpp_server.ws_url, TransportOptions(ca_file=str(xmpp_server.ca_file), request_timeout=5))
    async with logins(transport) as make:
        yield make


def test_plain_ws_to_another_host_needs_the_explicit_option() -> None:
    with pytest.raises(InvalidInputError) as caught:
        WsTransport("ws://chat.example/xmpp-websocket", TransportOptions())
    assert "allow_insecure_ws=True" in caught.value.message


def test_plain_ws_to_another_host_is_allowed_with_the_option() -> None:
    options = TransportOptions(extra={"allow_insecure_ws": True})
    assert WsTransport("ws://chat.example/xmpp-websocket", options).domain == "chat.example"


@pytest.mark.anyio
async def test_a_port_that_is_no_websocket_endpoint_is_503_naming_the_url(xmpp_server: XmppServer) -> None:
    url = f"ws://127.0.0.1:{xmpp_server.c2s_port}/xmpp-websocket"  # Prosody's XMPP port: it answers no HTTP

    with pytest.raises(UnreachableError) as caught:
        await WsTransport(url, TransportOptions(connect_timeout=5)).register_account("nobody", "secret")

    assert caught.value.message.startswith(f"No XMPP WebSocket endpoint at {url}: ")
    assert caught.value.message.endswith(": check the URL's port and path")
