"""The Transport interface: the small surface every carrier (memory, XMPP over TCP, WebSocket, yours) implements.

Rules:
- A ``Transport`` is built once per Client from the server URL and options; it reaches one server.
- ``Transport.register_account`` and ``Transport.open_session`` are the only calls that open connections.
- A ``TransportSession`` is one logged-in connection. Its calls take and return Rostra's schemas, never the
  carrier's types, and raise only ``RostraError`` subclasses (translate at the boundary).
- Server-initiated happenings reach the Client through the ``EventSink`` given to ``open_session``; the sink
  is a plain synchronous callable and must never be awaited or block.
- Validation, merging, image processing, timeouts and listeners live in the Client, once, not in transports.
- Transports are found by URL scheme through the entry-point group ``rostra.transports``.
"""

from __future__ import annotations

import abc
import logging
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from typing import TypeAlias
from urllib.parse import urlsplit

from ._errors import InvalidInputError, RostraError, ServerError
from ._schemas import Contact, Metadata, ProfileFields

__all__ = [
    "ContactRequestReceived",
    "ContactUpdated",
    "EventSink",
    "PresenceChanged",
    "ProfileChanged",
    "SessionLost",
    "Transport",
    "TransportEvent",
    "TransportOptions",
    "TransportSession",
    "load_transport",
]


# -- what a session reports to the Client -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProfileChanged:
    """A user's profile changed on the server (a contact's, or our own from another resource)."""

    user_jid: str
    fields: ProfileFields


@dataclass(frozen=True, slots=True)
class PresenceChanged:
    """A contact came online (``online=True``) or went offline."""

    user_jid: str
    online: bool


@dataclass(frozen=True, slots=True)
class ContactRequestReceived:
    """Someone we have not added asked for a subscription; the Client decides."""

    user_jid: str


@dataclass(frozen=True, slots=True)
class ContactUpdated:
    """Our roster entry for ``contact.user_jid`` changed (``subscription='none'`` and removed=True: gone)."""

    contact: Contact
    removed: bool = False


@dataclass(frozen=True, slots=True)
class SessionLost:
    """The connection ended without logout(); ``error`` says why, and decides whether the Client reconnects.

    ``ConflictError`` (409): another login with our resource replaced this session (stream error ``conflict``,
    RFC 6120 4.9.3.3); the Client does not reconnect (it would only replace the other login in turn). Anything
    else (``UnreachableError``, a protocol error...): the Client reconnects when it can.
    """

    error: RostraError


TransportEvent: TypeAlias = ProfileChanged | PresenceChanged | ContactRequestReceived | ContactUpdated | SessionLost
EventSink: TypeAlias = Callable[[TransportEvent], None]


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """What every transport understands. Unknown keyword options of the Client land in ``extra``."""

    ssl_context: ssl.SSLContext | None = None  # None: the system's trust store, verification on
    ca_file: str | None = None
    verify_tls: bool = True  # False only when the caller explicitly opts out
    connect_timeout: float = 10.0
    request_timeout: float = 10.0
    extra: dict[str, object] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"TransportOptions(ca_file={self.ca_file!r}, verify_tls={self.verify_tls}, "
            f"connect_timeout={self.connect_timeout}, request_timeout={self.request_timeout})"
        )


# -- the interface ------------------------------------------------------------------------------------------


class TransportSession(abc.ABC):
    """One authenticated connection. Every call raises ``RostraError`` subclasses only."""

    @property
    @abc.abstractmethod
    def jid(self) -> str:
        """The bare JID the server bound, e.g. ``alice@localhost``."""

    @abc.abstractmethod
    async def get_profile(self, user_jid: str) -> ProfileFields:
        """Any user's stored profile; empty fields for a user with none (or one that does not exist)."""

    @abc.abstractmethod
    async def set_profile(self, fields: ProfileFields) -> ProfileFields:
        """Replace our whole profile with ``fields`` (already validated and merged); return what was stored.

        On success every online contact is notified (a ``ProfileChanged`` in their sessions). On failure the old
        profile stays whole.
        """

    @abc.abstractmethod
    async def upload(self, data: bytes, *, filename: str, content_type: str) -> str | None:
        """Upload a file through the server's upload service and return its GET URL; None if there is none."""

    @abc.abstractmethod
    async def get_last_seen(self, user_jid: str) -> int:
        """Seconds since the user was last online, as the server says. Non-contact: ``ForbiddenError``."""

    @abc.abstractmethod
    async def get_metadata(self) -> Metadata | None:
        """The registration metadata kept on the server for us; None if none was ever stored."""

    @abc.abstractmethod
    async def set_metadata(self, metadata: Metadata) -> None:
        """Store our registration metadata on the server (replacing it)."""

    @abc.abstractmethod
    async def add_contact(self, user_jid: str) -> None:
        """Add to our roster and ask for a mutual subscription (also approves theirs if they asked first)."""

    @abc.abstractmethod
    async def answer_contact_request(self, user_jid: str, *, accept: bool) -> None:
        """Approve (and subscribe back) or refuse a pending request from ``user_jid``."""

    @abc.abstractmethod
    async def remove_contact(self, user_jid: str) -> None:
        """Remove from our roster, cancelling subscriptions both ways."""

    @abc.abstractmethod
    async def get_contacts(self) -> Sequence[Contact]:
        """Our roster."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Log out: send unavailable presence and end the stream. Idempotent; never raises."""


class Transport(abc.ABC):
    """Knows how to reach one server. Built as ``TransportClass(url, options)``."""

    #: URL schemes this transport serves, for discovery.
    schemes: tuple[str, ...] = ()
    #: Keyword options of ``rostra.Client`` this transport reads from ``TransportOptions.extra`` (besides
    #: ``domain``); the Client refuses any other unknown keyword with a 400, so a typo never passes silently.
    extra_options: frozenset[str] = frozenset()

    def __init__(self, url: str, options: TransportOptions) -> None:
        self.url = url
        self.options = options

    @property
    @abc.abstractmethod
    def domain(self) -> str:
        """The XMPP domain users live on (``alice@<domain>``)."""

    @abc.abstractmethod
    async def register_account(self, username: str, password: str) -> None:
        """Create the account. Exists: ``ConflictError``; refused name: ``InvalidInputError``; throttled: 429."""

    @abc.abstractmethod
    async def open_session(self, username: str, password: str, events: EventSink) -> TransportSession:
        """Connect and authenticate. Bad credentials: ``AuthenticationError``; no server: ``UnreachableError``."""

    async def aclose(self) -> None:  # noqa: B027 - a hook, empty by default
        """Release what the transport shares between sessions (SSL contexts, pools)."""


# -- discovery ---------------------------------------------------------------------------------------------

_log = logging.getLogger("rostra")

_KNOWN_PACKAGES = {
    "xmpp": "rostra-xmpp",
    "xmpps": "rostra-xmpp",
    "ws": "rostra-ws",
    "wss": "rostra-ws",
}


#: Entry points of other packages that failed to load, already logged.
_BROKEN_REPORTED: set[str] = set()


@cache
def _transport_for(scheme: str) -> type[Transport] | None:
    """The class serving ``scheme``. The entry point NAMED for the scheme is loaded first, so that another, broken
    plugin cannot break it; then the others, for classes that declare extra ``schemes``."""
    eps = sorted(entry_points(group="rostra.transports"), key=lambda ep: ep.name != scheme)
    for ep in eps:
        if ep.name == scheme:
            try:
                return ep.load()  # type: ignore[no-any-return]
            except Exception as exc:  # the scheme's own package is broken: say which, as a RostraError
                _log.warning("The transport entry point %r could not be loaded", ep.value, exc_info=True)
                raise ServerError(
                    f"The transport for {scheme}:// ({ep.value}) is installed but fails to import "
                    f"({type(exc).__name__}): reinstall the package that provides it"
                ) from None
        try:
            cls = ep.load()
        except Exception:  # another package's broken plugin must not break this scheme
            if ep.value not in _BROKEN_REPORTED:  # once per process, not once per URL
                _BROKEN_REPORTED.add(ep.value)
                _log.warning("The transport entry point %r could not be loaded", ep.value, exc_info=True)
            continue
        if scheme in (getattr(cls, "schemes", ()) or ()):
            return cls  # type: ignore[no-any-return]
    return None


def load_transport(url: str) -> type[Transport]:
    """The Transport class for ``url``'s scheme. Unknown or not installed: ``InvalidInputError`` naming the fix."""
    if not isinstance(url, str):
        raise InvalidInputError("The server URL must be a string such as 'xmpps://chat.example.com'")
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        raise InvalidInputError(f"Server URL {url!r} is malformed (e.g. an unclosed [IPv6] literal)") from None
    if not scheme:
        raise InvalidInputError(f"Server URL {url!r} has no scheme: use memory://, xmpp://host, xmpps://host or ws://")
    cls = _transport_for(scheme)
    if cls is None:
        package = _KNOWN_PACKAGES.get(scheme)
        if package:
            raise InvalidInputError(f"No transport for {scheme}:// is installed: pip install {package}")
        raise InvalidInputError(
            f"No transport is registered for {scheme}:// (entry-point group 'rostra.transports'): "
            "install the package that provides it"
        )
    return cls
