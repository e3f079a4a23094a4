"""Rostra: a Profile API (register, connect, profiles, last seen, contacts) on open XMPP servers.

``async with rostra.Client("memory://") as sdk:`` runs on the in-process server; ``xmpp://host`` and
``xmpps://host`` need the ``rostra-xmpp`` package.
"""

from ._client import UNSET, Client
from ._credentials import Credentials, CredentialStore, FileCredentialStore, MemoryCredentialStore
from ._errors import (
    AlreadyConnectedError,
    AuthenticationError,
    ClientClosedError,
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotConnectedError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    ReconnectingError,
    RequestTimeoutError,
    RostraError,
    ServerError,
    UnreachableError,
)
from ._image import ImageLimits
from ._listeners import EventStream
from ._schemas import (
    ConnectionEvent,
    ConnectionStatus,
    Contact,
    ContactEvent,
    ContactRequestEvent,
    ContactsResponse,
    CurrentJidResponse,
    Event,
    LastSeen,
    LastSeenResponse,
    MetadataResponse,
    Profile,
    ProfileEvent,
    ProfileResponse,
    RegisterData,
    RegisterResponse,
    Response,
    StatusResponse,
)
from ._state import State

__all__ = [
    "UNSET",
    "AlreadyConnectedError",
    "AuthenticationError",
    "Client",
    "ClientClosedError",
    "ConflictError",
    "ConnectionEvent",
    "ConnectionStatus",
    "Contact",
    "ContactEvent",
    "ContactRequestEvent",
    "ContactsResponse",
    "CredentialStore",
    "Credentials",
    "CurrentJidResponse",
    "Event",
    "EventStream",
    "FileCredentialStore",
    "ForbiddenError",
    "ImageLimits",
    "InvalidInputError",
    "LastSeen",
    "LastSeenResponse",
    "MemoryCredentialStore",
    "MetadataResponse",
    "NotConnectedError",
    "NotFoundError",
    "PayloadTooLargeError",
    "Profile",
    "ProfileEvent",
    "ProfileResponse",
    "RateLimitedError",
    "ReconnectingError",
    "RegisterData",
    "RegisterResponse",
    "RequestTimeoutError",
    "Response",
    "RostraError",
    "ServerError",
    "State",
    "StatusResponse",
    "UnreachableError",
]
