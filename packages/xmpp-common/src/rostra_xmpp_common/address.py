"""Where an XMPP server URL points, and which XMPP domain its users live on: one rule for every XMPP carrier.

The URL names exactly where to connect. The domain is ``?domain=NAME`` in the URL, else the ``domain`` option,
else the URL host, except that a loopback IP literal (127.0.0.0/8, ::1) means ``localhost`` (docs/architecture.md).
Everything is checked here, before any network I/O: a URL that holds anything this rule does not read (a space or
control character, a path on a carrier without one, a parameter twice) is refused, never silently ignored.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qs, urlsplit

from rostra._errors import InvalidInputError
from rostra._validate import check_domain

__all__ = ["ServerAddress", "is_loopback", "parse_server_url"]

# Only XMPP over WebSocket (RFC 7395) names a resource on the server; xmpp:// and xmpps:// reach a port, nothing more.
_PATH_SCHEMES: Final = frozenset({"ws", "wss"})
# A host name as resolvers take it (underscores included: container names); IP literals are checked by ipaddress.
_HOST_RE: Final = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?")


def is_loopback(host: str) -> bool:
    """True for a loopback IP literal or the name ``localhost``."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class ServerAddress:
    scheme: str
    host: str
    port: int
    path: str
    domain: str


def parse_server_url(url: str, default_ports: Mapping[str, int], extra: Mapping[str, object]) -> ServerAddress:
    """Split ``url`` (one of ``default_ports``' schemes) into where to connect and the domain. Bad URL: 400."""
    if any(ch.isspace() or not ch.isprintable() or not ch.isascii() for ch in url):
        # urlsplit would drop tabs and newlines and keep the rest for the resolver: refuse them all instead.
        raise InvalidInputError(
            f"Server URL {url!r} holds a space, control or non-ASCII character: remove it (write an "
            "internationalized host in its xn-- form, percent-encode a path character)"
        )
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise InvalidInputError(f"Server URL {url!r} is malformed (e.g. an unclosed [IPv6] literal)") from None
    schemes = ", ".join(f"{scheme}://host[:port]" for scheme in default_ports)
    if parts.scheme not in default_ports or not host:
        raise InvalidInputError(f"Server URL {url!r} is not one of {schemes}")
    _check_host(url, host)
    try:
        port = parts.port
    except ValueError:
        raise InvalidInputError(f"Server URL {url!r} has an invalid port") from None
    if parts.username is not None or parts.password is not None:
        raise InvalidInputError("The server URL must not hold credentials: pass them to connect()")
    if parts.fragment:
        raise InvalidInputError(f"Server URL {url!r} has a #fragment, which means nothing here: remove it")
    if parts.scheme not in _PATH_SCHEMES and parts.path not in ("", "/"):
        raise InvalidInputError(
            f"Server URL {url!r} has a path ({parts.path!r}), which {parts.scheme}:// does not use: remove it "
            f"(write {parts.scheme}://host[:port]; only ws:// and wss:// URLs name a path)"
        )
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"domain"})
    if unknown:
        raise InvalidInputError(
            f"Server URL {url!r} has unknown parameter(s) {', '.join(unknown)}: only ?domain=NAME is understood"
        )
    twice = sorted(name for name, values in query.items() if len(values) > 1)
    if twice:
        raise InvalidInputError(f"Server URL {url!r} gives {', '.join(twice)} more than once: give each parameter once")
    if "domain" in query:
        _check_domain(query["domain"][0])
    explicit = next(iter(query.get("domain", [])), None) or extra.get("domain")
    assert host is not None
    if explicit:
        domain = str(explicit)
    elif is_loopback(host) and host.lower() != "localhost":
        domain = "localhost"
    else:
        domain = host
        _check_host_domain(url, host)
    return ServerAddress(
        scheme=parts.scheme,
        host=host,
        port=port or default_ports[parts.scheme],
        path=parts.path or "/",
        domain=domain,
    )


def _check_host(url: str, host: str) -> None:
    """The host must be an IP literal or a host name: anything else would only fail later, at the resolver."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        valid = ":" not in host and _HOST_RE.fullmatch(host) is not None
    else:
        valid = True
    if not valid:
        raise InvalidInputError(
            f"Server URL {url!r} has an invalid host {host!r}: write a host name like chat.example.com or an IP "
            "address (an IPv6 one in brackets, like [2001:db8::1])"
        )


def _check_host_domain(url: str, host: str) -> None:
    """A host that also serves as the domain must be a domain users could live on (``alice@<host>``)."""
    try:
        check_domain(f"[{host}]" if ":" in host else host)
    except InvalidInputError:
        raise InvalidInputError(
            f"The host {host!r} of server URL {url!r} is not a valid XMPP domain: name the server's domain with "
            "?domain=NAME (or the domain option)"
        ) from None


def _check_domain(domain: str) -> None:
    """``?domain=`` must name a domain users could live on, as the ``domain`` option must."""
    try:
        check_domain(domain)
    except InvalidInputError:
        raise InvalidInputError(
            f"?domain={domain!r} in the server URL is not a valid domain name: give e.g. ?domain=chat.example.com"
        ) from None
