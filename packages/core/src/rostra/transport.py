"""What a transport author builds on: the Transport interface, the session it opens, and what they exchange.

A transport is a package of its own that subclasses ``Transport`` and ``TransportSession`` and names its class in
the entry-point group ``rostra.transports`` (the entry point's name is its URL scheme). docs/transports.md walks
through one (examples/rostra-recorder), and ``rostra.testing`` checks it against the specification, ``memory://``.
"""

from ._errors import (
    AuthenticationError,
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    RequestTimeoutError,
    RostraError,
    ServerError,
    UnreachableError,
)
from ._schemas import Contact, Metadata, MetadataValue, ProfileFields, Subscription
from ._transport import (
    ContactRequestReceived,
    ContactUpdated,
    EventSink,
    PresenceChanged,
    ProfileChanged,
    SessionLost,
    Transport,
    TransportEvent,
    TransportOptions,
    TransportSession,
    load_transport,
)

__all__ = [
    "AuthenticationError",
    "ConflictError",
    "Contact",
    "ContactRequestReceived",
    "ContactUpdated",
    "EventSink",
    "ForbiddenError",
    "InvalidInputError",
    "Metadata",
    "MetadataValue",
    "NotFoundError",
    "PayloadTooLargeError",
    "PresenceChanged",
    "ProfileChanged",
    "ProfileFields",
    "RateLimitedError",
    "RequestTimeoutError",
    "RostraError",
    "ServerError",
    "SessionLost",
    "Subscription",
    "Transport",
    "TransportEvent",
    "TransportOptions",
    "TransportSession",
    "UnreachableError",
    "load_transport",
]
