"""Where an XMPP server URL points, and which XMPP domain its users live on: one rule for every XMPP carrier.

The URL names exactly where to connect. The domain is ``?domain=NAME`` in the URL, else the ``domain`` option,
else the URL host, except that a loopback IP literal (127.0.0.0/8, ::1) means ``localhost`` (docs/architecture.md).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from rostra._errors import InvalidInputError
from rostra._validate import check_domain

__all__ = ["ServerAddress", "is_loopback", "parse_server_url"]


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
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise InvalidInputError(f"Server URL {url!r} is malformed (e.g. an unclosed [IPv6] literal)") from None
    schemes = ", ".join(f"{scheme}://host[:port]" for scheme in default_ports)
    if parts.scheme not in default_ports or not host:
        raise InvalidInputError(f"Server URL {url!r} is not one of {schemes}")
    try:
        port = parts.port
    except ValueError:
        raise InvalidInputError(f"Server URL {url!r} has an invalid port") from None
    if parts.username is not None or parts.password is not None:
        raise InvalidInputError("The server URL must not hold credentials: pass them to connect()")
    if parts.fragment:
        raise InvalidInputError(f"Server URL {url!r} has a #fragment, which means nothing here: remove it")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"domain"})
    if unknown:
        raise InvalidInputError(
            f"Server URL {url!r} has unknown parameter(s) {', '.join(unknown)}: only ?domain=NAME is understood"
        )
    if "domain" in query:
        _check_domain(query["domain"][-1])
    explicit = next(iter(query.get("domain", [])), None) or extra.get("domain")
    assert host is not None
    if explicit:
        domain = str(explicit)
    elif is_loopback(host) and host.lower() != "localhost":
        domain = "localhost"
    else:
        domain = host
    return ServerAddress(
        scheme=parts.scheme,
        host=host,
        port=port or default_ports[parts.scheme],
        path=parts.path or "/",
        domain=domain,
    )


def _check_domain(domain: str) -> None:
    """``?domain=`` must name a domain users could live on, as the ``domain`` option must."""
    try:
        check_domain(domain)
    except InvalidInputError:
        raise InvalidInputError(
            f"?domain={domain!r} in the server URL is not a valid domain name: give e.g. ?domain=chat.example.com"
        ) from None
