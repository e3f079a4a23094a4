"""Server URLs of both XMPP carriers: where to connect, the domain, and what a URL may not hold."""

from __future__ import annotations

import pytest

from rostra._errors import InvalidInputError
from rostra_xmpp_common.address import ServerAddress, parse_server_url

PORTS = {"xmpp": 5222, "ws": 80}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("xmpp://127.0.0.1", ServerAddress("xmpp", "127.0.0.1", 5222, "/", "localhost")),
        ("xmpp://chat.example:5333", ServerAddress("xmpp", "chat.example", 5333, "/", "chat.example")),
        ("ws://127.0.0.1:8080/xmpp-websocket", ServerAddress("ws", "127.0.0.1", 8080, "/xmpp-websocket", "localhost")),
        ("xmpp://10.0.0.7?domain=corp.example", ServerAddress("xmpp", "10.0.0.7", 5222, "/", "corp.example")),
    ],
)
def test_a_url_gives_where_to_connect_and_the_domain(url: str, expected: ServerAddress) -> None:
    assert parse_server_url(url, PORTS, {}) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("xmpp://alice:secret@127.0.0.1", "The server URL must not hold credentials: pass them to connect()"),
        ("xmpp://127.0.0.1#x", "Server URL 'xmpp://127.0.0.1#x' has a #fragment, which means nothing here: remove it"),
        (
            "xmpp://127.0.0.1?foo=bar&domain=a",
            "Server URL 'xmpp://127.0.0.1?foo=bar&domain=a' has unknown parameter(s) foo: "
            "only ?domain=NAME is understood",
        ),
        ("xmpp://127.0.0.1:99999", "Server URL 'xmpp://127.0.0.1:99999' has an invalid port"),
        ("xmpp://[::1", "Server URL 'xmpp://[::1' is malformed (e.g. an unclosed [IPv6] literal)"),
        (
            "xmpp://127.0.0.1?domain=bad..dom",
            "?domain='bad..dom' in the server URL is not a valid domain name: give e.g. ?domain=chat.example.com",
        ),
        (
            "xmpp://127.0.0.1?domain=example.com/evil",
            "?domain='example.com/evil' in the server URL is not a valid domain name: "
            "give e.g. ?domain=chat.example.com",
        ),
        (
            "ws://127.0.0.1?domain=",
            "?domain='' in the server URL is not a valid domain name: give e.g. ?domain=chat.example.com",
        ),
    ],
)
def test_a_url_that_holds_more_than_an_address_is_400(url: str, message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_server_url(url, PORTS, {})

    assert (caught.value.status_code, caught.value.message) == (400, message)
