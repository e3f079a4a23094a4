"""The in-process server behind ``memory://``: accounts, profiles, rosters, presence, last seen, uploads, metadata.

Rules:
- It behaves as Prosody does under Rostra's mapping (see docs/architecture.md); it is the executable specification.
- Everything is synchronous and immediate: events reach the sessions' sinks before the call that caused them returns.
- Rosters follow RFC 6121: ``to`` (we get their presence) and ``from`` (they get ours); ``both`` makes friends.
- Passwords are kept only as salted hashes and compared in constant time.
- Test hooks (``clock``, ``reachable``, ``stalled``, ``kick``, ``set_password``) let tests drive time and failures
  without sleeping.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._errors import (
    AuthenticationError,
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    RostraError,
    UnreachableError,
)
from ._schemas import Contact, Metadata, ProfileFields, Subscription
from ._transport import (
    ContactRequestReceived,
    ContactUpdated,
    EventSink,
    PresenceChanged,
    ProfileChanged,
    SessionLost,
    TransportEvent,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["MemoryServer", "ServerSession", "get_server"]

_HASH_ROUNDS = 1000  # a test server: enough to keep no plain password, cheap enough for property tests
_REFUSED_IN_USERNAMES = frozenset(" @/'\"\t\r\n:<>&")


@dataclass
class _Account:
    salt: bytes
    digest: bytes


@dataclass
class _RosterItem:
    to: bool = False  # we receive their presence
    from_: bool = False  # they receive ours
    pending_out: bool = False  # we asked for theirs

    @property
    def subscription(self) -> Subscription:
        if self.to and self.from_:
            return "both"
        if self.to:
            return "to"
        if self.from_:
            return "from"
        return "none"


@dataclass(eq=False)
class ServerSession:
    """One logged-in connection of ``username``; ``sink`` receives its events."""

    username: str
    sink: EventSink
    open: bool = True


@dataclass
class MemoryServer:
    """One in-process server. ``clock`` gives seconds (monotonic); replace it in tests to move time."""

    name: str
    domain: str = "localhost"
    upload_enabled: bool = True
    upload_limit: int = 10 * 1024 * 1024
    clock: Callable[[], float] = time.monotonic
    reachable: bool = True
    stalled: set[str] = field(default_factory=set)  # operation names that never answer (to test timeouts)
    _accounts: dict[str, _Account] = field(default_factory=dict)
    _profiles: dict[str, ProfileFields] = field(default_factory=dict)
    _metadata: dict[str, Metadata] = field(default_factory=dict)
    _rosters: dict[str, dict[str, _RosterItem]] = field(default_factory=dict)
    _requests: dict[str, list[str]] = field(default_factory=dict)  # username -> JIDs asking us, oldest first
    _sessions: dict[str, list[ServerSession]] = field(default_factory=dict)
    _last_logout: dict[str, float] = field(default_factory=dict)
    uploads: dict[str, bytes] = field(default_factory=dict)

    # -- accounts and sessions -------------------------------------------------------------------------------

    def jid(self, username: str) -> str:
        return f"{username}@{self.domain}"

    def register(self, username: str, password: str) -> None:
        """Create the account. Exists (any case): ``ConflictError``; a name XMPP refuses: ``InvalidInputError``."""
        self._check_reachable()
        name = username.casefold()
        if not name or len(name.encode()) > 1023 or any(ch in _REFUSED_IN_USERNAMES for ch in name):
            raise InvalidInputError("The server refused this username: use ASCII letters and digits only")
        if name in self._accounts:
            raise ConflictError("This identifier is registered already: pick another one")
        salt = secrets.token_bytes(16)
        self._accounts[name] = _Account(salt, _digest(password, salt))

    def login(self, username: str, password: str, sink: EventSink) -> ServerSession:
        """Authenticate and go online. Wrong name or password: ``AuthenticationError``."""
        self._check_reachable()
        name = username.casefold()
        account = self._accounts.get(name)
        # Hash even for an unknown name, so both refusals cost the same.
        digest = _digest(password, account.salt if account else b"\0" * 16)
        if account is None or not hmac.compare_digest(digest, account.digest):
            raise AuthenticationError()
        session = ServerSession(name, sink)
        first = not self._sessions.get(name)
        self._sessions.setdefault(name, []).append(session)
        me = self.jid(name)
        for other, item in self._roster(name).items():
            if item.to and self._online(_local(other)):
                session.sink(PresenceChanged(other, online=True))
        if first:
            self._to_subscribers(name, PresenceChanged(me, online=True))
        for asker in list(self._requests.get(name, [])):
            ours = self._roster(name).get(asker)
            if ours is not None and (ours.to or ours.pending_out):
                self._grant(owner=name, subscriber=_local(asker))  # someone we asked, waiting since we were away
            else:
                session.sink(ContactRequestReceived(asker))
        return session

    def logout(self, session: ServerSession) -> None:
        """End ``session`` (idempotent); the last one ending makes the user offline and starts last seen."""
        if not session.open:
            return
        session.open = False
        sessions = self._sessions.get(session.username, [])
        sessions.remove(session)
        if not sessions:
            self._last_logout[session.username] = self.clock()
            self._to_subscribers(session.username, PresenceChanged(self.jid(session.username), online=False))

    def kick(self, username: str, error: RostraError | None = None) -> None:
        """Drop every session of ``username`` as a lost connection would (test hook): each gets ``SessionLost``
        carrying ``error`` (default: ``UnreachableError``; a ``ConflictError`` is another login taking our place)."""
        lost = SessionLost(error or UnreachableError("The connection to the server was lost: connect() again"))
        for session in list(self._sessions.get(username, [])):
            self.logout(session)
            session.sink(lost)

    def set_password(self, username: str, password: str) -> None:
        """Change the password of an existing account (test hook: the old one stops working)."""
        salt = secrets.token_bytes(16)
        self._accounts[username.casefold()] = _Account(salt, _digest(password, salt))

    # -- profiles, metadata, uploads ---------------------------------------------------------------------------

    def get_profile(self, user_jid: str, *, reader: ServerSession | None = None) -> ProfileFields:
        """The profile as ``reader`` may see it: whole for its owner and for the users who receive the owner's
        presence (the owner's roster says ``from``/``both`` for them), else its public copy (``public()``: no
        mobile number or email unless the owner shares them). No reader: the whole profile (a test's view)."""
        owner = self._local_user(user_jid)
        fields = self._profiles.get(owner, ProfileFields())
        if reader is None or reader.username == owner:
            return fields
        item = self._roster(owner).get(self.jid(reader.username))
        return fields if item is not None and item.from_ else fields.public()

    def set_profile(self, session: ServerSession, fields: ProfileFields) -> ProfileFields:
        """Store the profile verbatim; tell our other sessions and everyone who receives our presence."""
        self._profiles[session.username] = fields
        event = ProfileChanged(self.jid(session.username), fields)
        for own in self._sessions.get(session.username, []):
            if own is not session:
                own.sink(event)
        self._to_subscribers(session.username, event)
        return fields

    def get_metadata(self, session: ServerSession) -> Metadata | None:
        stored = self._metadata.get(session.username)
        return dict(stored) if stored is not None else None

    def set_metadata(self, session: ServerSession, metadata: Metadata) -> None:
        self._metadata[session.username] = dict(metadata)

    def upload(self, data: bytes, filename: str) -> str | None:
        """Keep ``data`` and return its URL; None when uploads are off. Over the limit: ``PayloadTooLargeError``."""
        if not self.upload_enabled:
            return None
        if len(data) > self.upload_limit:
            raise PayloadTooLargeError(f"The server accepts uploads up to {self.upload_limit} bytes")
        url = f"memory://{self.name}/upload/{secrets.token_urlsafe(12)}/{filename}"
        self.uploads[url] = bytes(data)
        return url

    # -- last seen -----------------------------------------------------------------------------------------

    def get_last_seen(self, session: ServerSession, user_jid: str) -> int:
        """Whole seconds since ``user_jid`` went offline; 0 online. Needs a mutual subscription (else 403)."""
        target = self._local_user(user_jid)
        item = self._roster(session.username).get(self.jid(target))
        if item is None or item.subscription != "both":
            raise ForbiddenError()
        if self._online(target) or target not in self._last_logout:
            return 0
        return max(0, math.floor(self.clock() - self._last_logout[target]))

    # -- roster ----------------------------------------------------------------------------------------------

    def get_contacts(self, session: ServerSession) -> list[Contact]:
        return [_contact(jid, item) for jid, item in sorted(self._roster(session.username).items())]

    def add_contact(self, session: ServerSession, user_jid: str) -> None:
        """Subscribe to ``user_jid``; accepts their request if they asked first. No pre-approval (as the XMPP
        transports): if they ask later, our session accepts it at once, or at our next login if we are away."""
        me, them = session.username, self._local_user(user_jid)
        self._roster(me).setdefault(self.jid(them), _RosterItem())
        if self.jid(them) in self._requests.get(me, []):
            self._grant(owner=me, subscriber=them)
        self._subscribe(subscriber=me, owner=them)
        self._roster_push(me, self.jid(them))

    def answer_request(self, session: ServerSession, user_jid: str, *, accept: bool) -> None:
        """Approve (and subscribe back) or refuse the request of ``user_jid``."""
        me, them = session.username, self._local_user(user_jid)
        if not accept:
            if self.jid(them) in self._requests.get(me, []):
                self._requests[me].remove(self.jid(them))
                their_item = self._roster(them).get(self.jid(me))
                if their_item is not None:
                    their_item.pending_out = False
                    self._roster_push(them, self.jid(me))
            return
        self.add_contact(session, user_jid)

    def remove_contact(self, session: ServerSession, user_jid: str) -> None:
        """Drop ``user_jid`` from our roster and cancel the subscriptions both ways (not there: nothing to do)."""
        if user_jid.rpartition("@")[2].casefold() != self.domain.casefold():
            self._roster(session.username).pop(user_jid, None)  # another server's user: only our entry can go
            return
        me, them = session.username, self._local_user(user_jid)
        item = self._roster(me).pop(self.jid(them), None)
        requests = self._requests.get(me, [])
        if self.jid(them) in requests:
            requests.remove(self.jid(them))
        if item is not None:
            for own in self._sessions.get(me, []):
                own.sink(ContactUpdated(Contact(user_jid=self.jid(them), subscription="none", is_friend=False), True))
                if item.to and self._online(them):
                    own.sink(PresenceChanged(self.jid(them), online=False))
        their_requests = self._requests.get(them, [])
        if self.jid(me) in their_requests:
            their_requests.remove(self.jid(me))  # our own request to them is withdrawn too
        their_item = self._roster(them).get(self.jid(me))
        if their_item is not None:
            was_to = their_item.to
            their_item.to = their_item.from_ = their_item.pending_out = False
            self._roster_push(them, self.jid(me))
            if was_to and self._online(me):
                for theirs in self._sessions.get(them, []):
                    theirs.sink(PresenceChanged(self.jid(me), online=False))

    # -- helpers ---------------------------------------------------------------------------------------------

    def _subscribe(self, *, subscriber: str, owner: str) -> None:
        """``subscriber`` asks for ``owner``'s presence: granted at once if the owner asked them and is online (their
        client accepts it), else a request (delivered now, or at the owner's next login)."""
        if owner not in self._accounts:
            self._roster(subscriber)[self.jid(owner)].pending_out = True
            return
        owner_item = self._roster(owner).get(self.jid(subscriber))
        if owner_item is not None and owner_item.from_:
            return
        if owner_item is not None and (owner_item.to or owner_item.pending_out) and self._online(owner):
            self._grant(owner=owner, subscriber=subscriber)  # someone the owner asked: their client accepts at once
            return
        self._roster(subscriber)[self.jid(owner)].pending_out = True
        requests = self._requests.setdefault(owner, [])
        if self.jid(subscriber) not in requests:
            requests.append(self.jid(subscriber))
            for session in self._sessions.get(owner, []):
                session.sink(ContactRequestReceived(self.jid(subscriber)))

    def _grant(self, *, owner: str, subscriber: str) -> None:
        """``owner`` lets ``subscriber`` receive its presence."""
        requests = self._requests.get(owner, [])
        if self.jid(subscriber) in requests:
            requests.remove(self.jid(subscriber))
        owner_item = self._roster(owner).setdefault(self.jid(subscriber), _RosterItem())
        owner_item.from_ = True
        sub_item = self._roster(subscriber).setdefault(self.jid(owner), _RosterItem())
        sub_item.to = True
        sub_item.pending_out = False
        self._roster_push(owner, self.jid(subscriber))
        self._roster_push(subscriber, self.jid(owner))
        if self._online(owner):
            for session in self._sessions.get(subscriber, []):
                session.sink(PresenceChanged(self.jid(owner), online=True))

    def _roster_push(self, username: str, contact_jid: str) -> None:
        item = self._roster(username).get(contact_jid)
        if item is None:
            return
        event = ContactUpdated(_contact(contact_jid, item))
        for session in self._sessions.get(username, []):
            session.sink(event)

    def _to_subscribers(self, username: str, event: TransportEvent) -> None:
        """Send ``event`` to every online session of the users who receive ``username``'s presence."""
        for other, item in self._roster(username).items():
            if item.from_:
                for session in self._sessions.get(_local(other), []):
                    session.sink(event)

    def _roster(self, username: str) -> dict[str, _RosterItem]:
        return self._rosters.setdefault(username, {})

    def _online(self, username: str) -> bool:
        return bool(self._sessions.get(username))

    def _local_user(self, user_jid: str) -> str:
        """The local username of a bare JID on this server; another domain: ``NotFoundError`` (no s2s)."""
        local, _, domain = user_jid.rpartition("@")
        if domain.casefold() != self.domain.casefold() or not local:
            raise NotFoundError(f"{user_jid} is not on this server ({self.domain}): only local users can be reached")
        return local.casefold()

    def _check_reachable(self) -> None:
        if not self.reachable:
            raise UnreachableError(f"The memory server {self.name!r} is not reachable (test switch)")

    def sessions_of(self, username: str) -> Iterator[ServerSession]:
        yield from self._sessions.get(username, [])


def _digest(password: str, salt: bytes) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _HASH_ROUNDS)


def _local(user_jid: str) -> str:
    return user_jid.rpartition("@")[0]


def _contact(user_jid: str, item: _RosterItem) -> Contact:
    return Contact(user_jid=user_jid, subscription=item.subscription, is_friend=item.subscription == "both")


_servers: dict[str, MemoryServer] = {}


def get_server(name: str, *, domain: str = "localhost", upload_enabled: bool = True) -> MemoryServer:
    """The process-wide server called ``name``, created on first use with these settings."""
    server = _servers.get(name)
    if server is None:
        server = _servers[name] = MemoryServer(name=name, domain=domain, upload_enabled=upload_enabled)
    return server
