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


ALL_PORTS = {"xmpp": 5222, "xmpps": 5223, "ws": 80, "wss": 443}
_CHARACTERS = (
    "holds a space, control or non-ASCII character: remove it (write an internationalized host in its xn-- form, "
    "percent-encode a path character)"
)


@pytest.mark.parametrize("scheme", ["xmpp", "xmpps", "ws", "wss"])
@pytest.mark.parametrize("host", ["h\x00st", "ho st", "ho\tst", "host\n", "h\x7fst", "hôst"])
def test_a_host_with_a_space_control_or_non_ascii_character_is_400(scheme: str, host: str) -> None:
    url = f"{scheme}://{host}"  # urlsplit alone would drop the tab and newline and keep the rest for the resolver

    with pytest.raises(InvalidInputError) as caught:
        parse_server_url(url, ALL_PORTS, {})

    assert (caught.value.status_code, caught.value.message) == (400, f"Server URL {url!r} {_CHARACTERS}")


@pytest.mark.parametrize("scheme", ["xmpp", "xmpps", "ws", "wss"])
@pytest.mark.parametrize("host", ["h%20st", "a..b", "a.b!c"])
def test_a_host_that_is_no_host_name_or_ip_literal_is_400(scheme: str, host: str) -> None:
    url = f"{scheme}://{host}/x"

    with pytest.raises(InvalidInputError) as caught:
        parse_server_url(url, ALL_PORTS, {})

    assert (caught.value.status_code, caught.value.message) == (
        400,
        f"Server URL {url!r} has an invalid host {host!r}: write a host name like chat.example.com or an IP address "
        "(an IPv6 one in brackets, like [2001:db8::1])",
    )


@pytest.mark.parametrize("scheme", ["xmpp", "xmpps"])
@pytest.mark.parametrize("path", ["/path", "//", "/xmpp-websocket"])
def test_a_path_on_a_carrier_without_paths_is_400(scheme: str, path: str) -> None:
    url = f"{scheme}://host:5222{path}"

    with pytest.raises(InvalidInputError) as caught:
        parse_server_url(url, ALL_PORTS, {})

    assert (caught.value.status_code, caught.value.message) == (
        400,
        f"Server URL {url!r} has a path ({path!r}), which {scheme}:// does not use: remove it "
        f"(write {scheme}://host[:port]; only ws:// and wss:// URLs name a path)",
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("xmpp://host:5222/", ServerAddress("xmpp", "host", 5222, "/", "host")),
        ("xmpps://host", ServerAddress("xmpps", "host", 5223, "/", "host")),
        (
            "wss://chat.example/xmpp-websocket",
            ServerAddress("wss", "chat.example", 443, "/xmpp-websocket", "chat.example"),
        ),
        ("ws://127.0.0.1:5280/a/b", ServerAddress("ws", "127.0.0.1", 5280, "/a/b", "localhost")),
        ("xmpp://xmpp_server?domain=chat.example", ServerAddress("xmpp", "xmpp_server", 5222, "/", "chat.example")),
    ],
)
def test_a_root_path_and_websocket_paths_are_kept(url: str, expected: ServerAddress) -> None:
    assert parse_server_url(url, ALL_PORTS, {}) == expected


@pytest.mark.parametrize("scheme", ["xmpp", "xmpps", "ws", "wss"])
@pytest.mark.parametrize("query", ["domain=a.example&domain=b.example", "domain=a.example&domain=a.example"])
def test_a_parameter_given_twice_is_400(scheme: str, query: str) -> None:
    url = f"{scheme}://host?{query}"

    with pytest.raises(InvalidInputError) as caught:
        parse_server_url(url, ALL_PORTS, {})

    assert (caught.value.status_code, caught.value.message) == (
        400,
        f"Server URL {url!r} gives domain more than once: give each parameter once",
    )


@pytest.mark.parametrize("host", ["xmpp_server", "a_b.example"])
def test_a_host_that_is_the_domain_must_be_a_valid_domain(host: str) -> None:
    url = f"xmpp://{host}"

    with pytest.raises(InvalidInputError) as caught:
        parse_server_url(url, ALL_PORTS, {})

    assert (caught.value.status_code, caught.value.message) == (
        400,
        f"The host {host!r} of server URL {url!r} is not a valid XMPP domain: name the server's domain with "
        "?domain=NAME (or the domain option)",
    )
