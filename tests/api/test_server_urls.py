"""A server URL that holds anything Rostra does not read is refused when the Client is built, before any I/O."""

from __future__ import annotations

import pytest

import rostra

_CHARACTERS = (
    "holds a space, control or non-ASCII character: remove it (write an internationalized host in its xn-- form, "
    "percent-encode a path character)"
)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        *(
            (url, f"Server URL {url!r} {_CHARACTERS}")
            for url in ("xmpp://h\x00st", "xmpp://ho st", "xmpps://ho st", "ws://h\x00st/x", "wss://ho\tst/x")
        ),
        (
            "xmpp://host:5222/path",
            "Server URL 'xmpp://host:5222/path' has a path ('/path'), which xmpp:// does not use: remove it "
            "(write xmpp://host[:port]; only ws:// and wss:// URLs name a path)",
        ),
        (
            "xmpps://host/xmpp-websocket",
            "Server URL 'xmpps://host/xmpp-websocket' has a path ('/xmpp-websocket'), which xmpps:// does not use: "
            "remove it (write xmpps://host[:port]; only ws:// and wss:// URLs name a path)",
        ),
        *(
            (url, f"Server URL {url!r} gives domain more than once: give each parameter once")
            for url in (
                "xmpp://host?domain=a&domain=b",
                "xmpps://host?domain=a&domain=b",
                "ws://127.0.0.1/x?domain=a&domain=a",
                "wss://host/x?domain=a&domain=b",
                "memory://x?domain=a&domain=b",
            )
        ),
        (
            "memory://x?domain=ex%20ample",
            "?domain='ex ample' in the server URL is not a valid domain name: give e.g. ?domain=chat.example.com",
        ),
        (
            "memory://x?domain=ex ample",
            "Server URL 'memory://x?domain=ex ample' holds a space or control character: remove it",
        ),
        (
            "memory://x?domain=a..b",
            "?domain='a..b' in the server URL is not a valid domain name: give e.g. ?domain=chat.example.com",
        ),
        ("memory://x\x00y", "Server URL 'memory://x\\x00y' holds a space or control character: remove it"),
        (
            "memory://x?domian=a.example",
            "Server URL 'memory://x?domian=a.example' has unknown parameter(s) domian: memory:// understands "
            "?domain=NAME and ?upload=0",
        ),
    ],
)
def test_an_odd_server_url_is_400_when_the_client_is_built(url: str, message: str) -> None:
    with pytest.raises(rostra.InvalidInputError) as caught:
        rostra.Client(url)

    assert (caught.value.status_code, caught.value.message) == (400, message)


def test_a_memory_url_with_a_bad_domain_creates_no_server() -> None:
    url = "memory://g-bad-domain?domain=ex%20ample"
    with pytest.raises(rostra.InvalidInputError):
        rostra.Client(url)

    assert rostra.Client("memory://g-bad-domain").domain == "localhost"
