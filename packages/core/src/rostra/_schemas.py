"""The msgspec schemas of every request, response and event.

Rules:
- Every message is a frozen, kw_only Struct; its public JSON uses the documented camelCase names (``rename="camel"``).
- Responses are untagged (their JSON is exactly the documented shape); events carry the tag field ``event``.
- Encoders and decoders are built once, here.
"""

from __future__ import annotations

import enum
from typing import Any, Literal, TypeAlias

import msgspec

__all__ = [
    "ConnectionEvent",
    "ConnectionStatus",
    "Contact",
    "ContactEvent",
    "ContactRequestEvent",
    "ContactsResponse",
    "CurrentJidResponse",
    "Event",
    "LastSeen",
    "LastSeenResponse",
    "Metadata",
    "MetadataResponse",
    "MetadataValue",
    "Profile",
    "ProfileEvent",
    "ProfileFields",
    "ProfileResponse",
    "RegisterData",
    "RegisterResponse",
    "Response",
    "StatusResponse",
    "Subscription",
    "decode_event",
    "encode",
]

MetadataValue: TypeAlias = str | bool | int | float
Metadata: TypeAlias = dict[str, MetadataValue]
Subscription: TypeAlias = Literal["none", "to", "from", "both"]


class ConnectionStatus(enum.Enum):
    """What connection listeners receive, once per change."""

    CONNECTING = "CONNECTING"
    CONNECTED = "CONNECTED"
    DISCONNECTED = "DISCONNECTED"
    CONNECTIONFAILED = "CONNECTIONFAILED"
    AUTHFAIL = "AUTHFAIL"
    RECONNECTING = "RECONNECTING"
    LOGOUT = "LOGOUT"


class _Message(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    pass


class ProfileFields(_Message, frozen=True, kw_only=True):
    """The editable part of a profile, as a transport stores it. ``""`` means unset."""

    nick_name: str = ""
    image: str = ""
    thumb_image: str = ""
    status: str = ""
    mobile_number: str = ""
    email: str = ""
    #: The owner's choice: mobile number and email readable by everyone (True), or by contacts only (False).
    share_contact_details: bool = False

    def is_empty(self) -> bool:
        return self == _EMPTY_FIELDS

    def public(self) -> ProfileFields:
        """What a user who is not a contact reads: everything but the mobile number and email, unless shared."""
        if self.share_contact_details or not (self.mobile_number or self.email):
            return self
        return msgspec.structs.replace(self, mobile_number="", email="")


_EMPTY_FIELDS = ProfileFields()


class Profile(_Message, frozen=True, kw_only=True):
    """A user's profile as the API returns it."""

    user_jid: str
    user_id: str
    nick_name: str = ""
    image: str = ""
    thumb_image: str = ""
    status: str = ""
    mobile_number: str = ""
    email: str = ""
    is_admin_blocked: bool = False
    #: The owner's choice (``set_user_profile(share_contact_details=...)``): mobile number and email for everyone.
    share_contact_details: bool = False

    @classmethod
    def from_fields(cls, user_jid: str, fields: ProfileFields) -> Profile:
        return cls(
            user_jid=user_jid,
            user_id=user_jid.partition("@")[0],
            nick_name=fields.nick_name,
            image=fields.image,
            thumb_image=fields.thumb_image,
            status=fields.status,
            mobile_number=fields.mobile_number,
            email=fields.email,
            share_contact_details=fields.share_contact_details,
        )

    def fields(self) -> ProfileFields:
        return ProfileFields(
            nick_name=self.nick_name,
            image=self.image,
            thumb_image=self.thumb_image,
            status=self.status,
            mobile_number=self.mobile_number,
            email=self.email,
            share_contact_details=self.share_contact_details,
        )


class RegisterData(_Message, frozen=True, kw_only=True):
    username: str
    password: str
    is_profile_updated: bool
    is_sandbox: bool
    user_jid: str

    def __repr__(self) -> str:
        # The password never appears in a repr (logs, tracebacks, debuggers).
        return (
            f"RegisterData(username={self.username!r}, password='***', "
            f"is_profile_updated={self.is_profile_updated}, is_sandbox={self.is_sandbox}, "
            f"user_jid={self.user_jid!r})"
        )


class LastSeen(_Message, frozen=True, kw_only=True):
    user_jid: str
    seconds: int


class Contact(_Message, frozen=True, kw_only=True):
    user_jid: str
    subscription: Subscription
    is_friend: bool


class Response(_Message, frozen=True, kw_only=True):
    """Base of every success response: ``{"statusCode": 200, "message": ...}``."""

    status_code: int = 200
    message: str = "Success"

    def to_dict(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)  # type: ignore[no-any-return]

    def to_json(self) -> str:
        return _encoder.encode(self).decode()


class StatusResponse(Response, frozen=True, kw_only=True):
    """connect() and logout(): a status code and a message, nothing else."""


class RegisterResponse(Response, frozen=True, kw_only=True):
    data: RegisterData

    def __repr__(self) -> str:
        return f"RegisterResponse(status_code={self.status_code}, message={self.message!r}, data={self.data!r})"


class ProfileResponse(Response, frozen=True, kw_only=True):
    data: Profile


class LastSeenResponse(Response, frozen=True, kw_only=True):
    data: LastSeen


class CurrentJidResponse(Response, frozen=True, kw_only=True):
    user_jid: str


class ContactsResponse(Response, frozen=True, kw_only=True):
    data: list[Contact] = msgspec.field(default_factory=list)


class MetadataResponse(Response, frozen=True, kw_only=True):
    data: Metadata = msgspec.field(default_factory=dict)


class _Event(msgspec.Struct, frozen=True, kw_only=True, rename="camel", tag_field="event"):
    def to_dict(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)  # type: ignore[no-any-return]

    def to_json(self) -> str:
        return _encoder.encode(self).decode()


class ConnectionEvent(_Event, frozen=True, kw_only=True, tag="connection"):
    status: ConnectionStatus
    user_jid: str = ""


class ProfileEvent(_Event, frozen=True, kw_only=True, tag="profile"):
    """A profile that changed or was fetched; ``data`` has the shape of ``ProfileResponse.data``."""

    data: Profile


class ContactRequestEvent(_Event, frozen=True, kw_only=True, tag="contactRequest"):
    """Someone asked to become a contact; answer with ``Client.accept_contact`` / ``decline_contact``."""

    from_user_jid: str


class ContactEvent(_Event, frozen=True, kw_only=True, tag="contact"):
    """A contact's subscription changed (added, became mutual, removed)."""

    data: Contact


Event: TypeAlias = ConnectionEvent | ProfileEvent | ContactRequestEvent | ContactEvent

_encoder = msgspec.json.Encoder()
_event_decoder = msgspec.json.Decoder(Event)


def encode(message: msgspec.Struct) -> bytes:
    """JSON of any response or event, with the documented names."""
    return _encoder.encode(message)


def decode_event(data: bytes | str) -> Event:
    return _event_decoder.decode(data)
