"""The Client: Rostra's public API, driving the session state machine and one Transport.

Rules:
- Every public call first feeds its ``Input`` to the ``SessionMachine``; a refused input raises the table's Local
  error and changes nothing. Then arguments are validated (400/413, nothing sent), then the transport is called.
- Every transport call runs under ``anyio.fail_after`` (``request_timeout``; ``connect_timeout`` for logins) and a
  timeout becomes ``RequestTimeoutError`` (408). A failed or timed-out call leaves the session usable.
- Connection statuses come only from the machine, so listeners see each change once.
- A lost session is retried in the Client's task group (RECONNECTING): capped exponential backoff with full
  jitter, each attempt under ``connect_timeout`` with the credentials of the last successful ``connect()``.
  ``logout()``, ``aclose()``, an authentication failure and a ``conflict`` end it; nothing retries after them.
- Any non-RostraError escaping a transport call is logged with its traceback and becomes a ``ServerError``
  (500); the session stays usable.
- Transport events reach the Client through a per-session sink; events of an older session are ignored, and events
  that arrive while the login is still under way are held until it has succeeded.
- Passwords never reach a log line, a repr or an exception text.
"""

from __future__ import annotations

import hmac
import logging
import random
import secrets
import ssl
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Final, TypeVar

import anyio
import anyio.abc
import anyio.to_thread
import msgspec
from anyio.streams.memory import MemoryObjectReceiveStream

from ._credentials import Credentials, CredentialStore, MemoryCredentialStore
from ._errors import (
    AlreadyConnectedError,
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotConnectedError,
    PayloadTooLargeError,
    RequestTimeoutError,
    RostraError,
    ServerError,
)
from ._image import ImageLimits, ImageURL, PreparedImage, classify_image, prepare_image, to_data_uri
from ._listeners import Listeners
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
    MetadataValue,
    Profile,
    ProfileEvent,
    ProfileFields,
    ProfileResponse,
    RegisterData,
    RegisterResponse,
    StatusResponse,
)
from ._state import Input, SessionMachine, State
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
from ._validate import (
    check_domain,
    check_email,
    check_identifier,
    check_jid,
    check_metadata,
    check_mobile_number,
    check_name,
    check_status,
)

__all__ = ["UNSET", "Client"]

log = logging.getLogger("rostra")

#: The metadata key under which the sandbox (trial) flag is stored; refused in caller metadata.
SANDBOX_KEY: Final = "rostra.sandbox"

_T = TypeVar("_T")


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


#: The default of ``set_user_profile``'s keywords: keep the current value.
UNSET: Final = _Unset()


class _Attempt:
    """One connect attempt, shared by every ``connect()`` call with the same credentials while it runs."""

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password
        self.done = anyio.Event()
        self.error: RostraError | None = None
        self.scope = anyio.CancelScope()

    def same_credentials(self, username: str, password: str) -> bool:
        return username == self.username and hmac.compare_digest(password.encode(), self.password.encode())

    def __repr__(self) -> str:  # never the password
        return f"_Attempt(username={self.username!r})"


class Client:
    """A Rostra SDK instance on one server. Use it as ``async with rostra.Client(url) as sdk``.

    Unknown keyword ``options`` (and ``domain``) are passed to the transport in ``TransportOptions.extra``.
    Raises InvalidInputError (400) when no transport serves the URL's scheme.
    """

    def __init__(
        self,
        server: str = "memory://",
        license_key: str | None = None,
        trial: bool = False,
        *,
        credential_store: CredentialStore | None = None,
        domain: str | None = None,
        ca_file: str | None = None,
        verify_tls: bool = True,
        connect_timeout: float = 10.0,
        request_timeout: float = 10.0,
        image_limits: ImageLimits | None = None,
        reconnect: bool = True,
        reconnect_delay: float = 0.5,
        reconnect_max_delay: float = 30.0,
        **options: object,
    ) -> None:
        self.server = server
        for name, seconds, minimum in (
            ("connect_timeout", connect_timeout, 0.0),
            ("request_timeout", request_timeout, 0.0),
            ("reconnect_delay", reconnect_delay, _MIN_RECONNECT_DELAY),
            ("reconnect_max_delay", reconnect_max_delay, _MIN_RECONNECT_DELAY),
        ):
            _check_timeout(name, seconds, minimum)
        if reconnect_max_delay < reconnect_delay:
            raise InvalidInputError(
                f"reconnect_max_delay ({reconnect_max_delay!r}) must be at least reconnect_delay ({reconnect_delay!r})"
            )
        if image_limits is not None and not isinstance(image_limits, ImageLimits):
            raise InvalidInputError("image_limits must be a rostra.ImageLimits(...)")
        if ca_file is not None:
            _check_ca_file(ca_file)
        for name, flag in (("trial", trial), ("verify_tls", verify_tls), ("reconnect", reconnect)):
            if not isinstance(flag, bool):
                raise InvalidInputError(f"{name} must be True or False, not {flag!r}")
        if license_key is not None and not isinstance(license_key, str):
            raise InvalidInputError("license_key must be a string or None (open servers need none)")
        if credential_store is not None and not isinstance(credential_store, CredentialStore):
            raise InvalidInputError(
                "credential_store must be a rostra.CredentialStore (e.g. rostra.FileCredentialStore(path))"
            )
        if domain is not None:
            _check_domain_option(domain)
        self._license_key = license_key  # kept for the hosted-SDK signature; open servers need none
        self._trial = trial
        self._store = credential_store if credential_store is not None else MemoryCredentialStore()
        self._limits = image_limits if image_limits is not None else ImageLimits()
        self._reconnect = reconnect
        self._reconnect_delay = float(reconnect_delay)
        self._reconnect_max_delay = float(reconnect_max_delay)
        self._restoring: anyio.CancelScope | None = None  # the scope of the reconnect task while RECONNECTING
        extra: dict[str, object] = dict(options)
        if domain is not None:
            extra["domain"] = domain
        self._options = TransportOptions(
            ca_file=ca_file,
            verify_tls=verify_tls,
            connect_timeout=connect_timeout,
            request_timeout=request_timeout,
            extra=extra,
        )
        transport_class = load_transport(server)
        unknown = sorted(set(options) - set(transport_class.extra_options))
        if unknown:
            accepted = ", ".join(sorted(transport_class.extra_options)) or "none"
            raise InvalidInputError(
                f"Unknown option(s) {', '.join(unknown)} for {server.split(':', 1)[0]}:// "
                f"(this transport's own options: {accepted}): check the spelling"
            )
        self._transport: Transport = transport_class(server, self._options)
        self._machine = SessionMachine()
        self._listeners = Listeners()
        self._task_group: anyio.abc.TaskGroup | None = None
        self.status: ConnectionStatus | None = None
        self._session: TransportSession | None = None
        self._jid = ""
        self._attempt: _Attempt | None = None
        self._session_attempt: _Attempt | None = None  # the attempt that opened ``_session``
        self._held: list[TransportEvent] = []
        self._online: dict[str, bool] = {}
        self._contacts: dict[str, Contact] = {}
        self._announced_own: list[ProfileFields] = []
        self._profile_lock = anyio.Lock()  # one read-merge-write of our own profile at a time: no lost updates

    def __repr__(self) -> str:
        return f"Client(server={self.server!r}, state={self.state.value}, user_jid={self._jid!r})"

    @property
    def domain(self) -> str:
        """The XMPP domain users of this server live on (``alice@<domain>``); credentials are kept per domain."""
        return self._transport.domain

    @property
    def state(self) -> State:
        """The session state (``rostra._state.State``)."""
        return self._machine.state

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def __aenter__(self) -> Client:
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._listeners.task_group = self._task_group
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        try:
            await self.aclose()
        finally:
            group, self._task_group = self._task_group, None
            self._listeners.task_group = None
            if group is not None:
                group.cancel_scope.cancel()
                # The body's own exception is not handed to the task group: it would come out wrapped in an
                # ExceptionGroup, and callers catch RostraError, not groups. It propagates as it was raised.
                await group.__aexit__(None, None, None)
        return None

    async def aclose(self) -> None:
        """Log out if connected, end every event stream and release the transport. Idempotent."""
        log.debug("aclose")
        self._feed(Input.CLOSE)
        await self._end_session()
        self._listeners.close_all()
        with anyio.CancelScope(shield=True):
            await self._transport.aclose()

    # -- registration ----------------------------------------------------------------------------------------

    async def register(
        self, user_identifier: str, metadata: Mapping[str, MetadataValue] | None = None
    ) -> RegisterResponse:
        """Create an account; the SDK makes its password. Raises 400 (bad input), 409 (exists, not in the store)."""
        log.debug("register identifier=%r", user_identifier)
        self._feed(Input.REGISTER)
        username = check_identifier(user_identifier)
        user_metadata = check_metadata(metadata)
        if SANDBOX_KEY in user_metadata:
            raise InvalidInputError(f"metadata key {SANDBOX_KEY!r} is reserved by Rostra: use another key")
        password = secrets.token_urlsafe(24)
        try:
            await self._timed(self._transport.register_account(username, password))
        except ConflictError:
            known = self._store.get(self._transport.domain, username)
            if known is None:
                raise
            return await self._registered_before(known)
        user_jid = f"{username}@{self._transport.domain}"
        self._store.put(self._transport.domain, Credentials(username=username, password=password, user_jid=user_jid))
        session = await self._timed(self._transport.open_session(username, password, _ignore), connect=True)
        try:
            await self._timed(session.set_metadata({**user_metadata, SANDBOX_KEY: self._trial}))
        finally:
            await _close_quietly(session, self._options.connect_timeout)
        data = RegisterData(
            username=username,
            password=password,
            is_profile_updated=False,
            is_sandbox=self._trial,
            user_jid=session.jid or user_jid,
        )
        return RegisterResponse(data=data)

    async def _registered_before(self, known: Credentials) -> RegisterResponse:
        """The stored credentials of an existing account, with its profile and sandbox state read from the server."""
        try:
            session = await self._timed(
                self._transport.open_session(known.username, known.password, _ignore), connect=True
            )
        except AuthenticationError:
            self._store.delete(self._transport.domain, known.username)
            raise ConflictError(
                "This identifier is registered already and the stored password no longer works: pick another one"
            ) from None
        try:
            fields = await self._timed(session.get_profile(session.jid))
            metadata = await self._timed(session.get_metadata()) or {}
        finally:
            await _close_quietly(session, self._options.connect_timeout)
        data = RegisterData(
            username=known.username,
            password=known.password,
            is_profile_updated=not fields.is_empty(),
            is_sandbox=metadata.get(SANDBOX_KEY) is True,
            user_jid=known.user_jid,
        )
        return RegisterResponse(data=data)

    # -- connecting ------------------------------------------------------------------------------------------

    async def connect(self, username: str, password: str) -> StatusResponse:
        """Log in. Raises 401 (bad credentials), 503 (unreachable), 408 (timeout), 409 (connected already).

        A second call with the same credentials while one runs shares its outcome; other credentials meanwhile:
        ``AlreadyConnectedError`` (409), as a session for another user is being opened.
        """
        log.debug("connect username=%r", username)
        attempt = self._attempt
        if attempt is not None and self.state is State.CONNECTING:
            if not attempt.same_credentials(username, password):
                raise AlreadyConnectedError(
                    f"connect() for {attempt.username!r} is under way: await it, or call logout() first"
                )
            await attempt.done.wait()
            if attempt.error is not None:
                raise type(attempt.error)(attempt.error.message)
            return StatusResponse(message="Login Success")
        if not self._machine.allowed(Input.CONNECT):
            self._feed(Input.CONNECT)  # raises the table's Local error
        _check_credentials(username, password)
        self._feed(Input.CONNECT)
        attempt = self._attempt = _Attempt(username, password)
        try:
            await self._run_attempt(attempt)
        finally:
            attempt.done.set()
            if self._attempt is attempt:
                self._attempt = None
        if attempt.error is not None:
            raise attempt.error
        return StatusResponse(message="Login Success")

    async def _run_attempt(self, attempt: _Attempt) -> None:
        """Open the session and report the outcome to the machine; the error (if any) lands in ``attempt.error``."""
        try:
            session = await self._open_for(attempt)
        except BaseException:  # the caller was cancelled: the attempt ends as a failure
            attempt.error = attempt.error or NotConnectedError("connect() was cancelled: call it again")
            if self._attempt is attempt and self.state is State.CONNECTING:
                self._held.clear()
                self._feed(Input.CONNECT_FAILED)
            raise
        if self._attempt is not attempt or self.state is not State.CONNECTING:
            # logout() or aclose() ended the attempt while it ran.
            if session is not None:
                await _close_quietly(session, self._options.connect_timeout)
            attempt.error = attempt.error or NotConnectedError("connect() was ended by logout() or aclose()")
            return
        if session is None:
            self._held.clear()
            self._feed(Input.AUTH_FAILED if isinstance(attempt.error, AuthenticationError) else Input.CONNECT_FAILED)
            return
        self._session, self._session_attempt, self._jid = session, attempt, session.jid
        self._feed(Input.CONNECT_SUCCEEDED)
        held, self._held = self._held, []
        for event in held:
            self._on_event(attempt, event)

    async def _open_for(self, attempt: _Attempt) -> TransportSession | None:
        """The transport session for ``attempt``; None (with ``attempt.error`` set) if it failed or was ended."""
        with attempt.scope:
            try:
                return await self._timed(
                    self._transport.open_session(attempt.username, attempt.password, self._sink_for(attempt)),
                    connect=True,
                )
            except RostraError as exc:
                attempt.error = exc
        return None

    async def logout(self) -> StatusResponse:
        """End the session (or the connect attempt under way). Without one it does nothing and still succeeds."""
        log.debug("logout")
        self._feed(Input.LOGOUT)
        await self._end_session()
        return StatusResponse(message="Logout Success")

    async def _end_session(self) -> None:
        attempt, self._attempt = self._attempt, None
        if attempt is not None:
            attempt.scope.cancel()
        restoring, self._restoring = self._restoring, None
        if restoring is not None:
            restoring.cancel()  # no reconnect after logout() or aclose()
        session, self._session = self._session, None
        self._session_attempt = None
        self._forget_session()
        if session is not None:
            await _close_quietly(session, self._options.connect_timeout)

    def _forget_session(self) -> None:
        """Drop what was known about the session that ended (its JID, contacts, presence, echoes, held events)."""
        self._jid = ""
        self._online.clear()
        self._contacts.clear()
        self._announced_own.clear()
        self._held.clear()

    # -- profiles --------------------------------------------------------------------------------------------

    async def get_user_profile(self, to_user_jid: str) -> ProfileResponse:
        """Any user's profile (empty strings if none). Raises 400 (malformed JID), 404 (other server)."""
        log.debug("get_user_profile jid=%r", to_user_jid)
        session = self._request(Input.GET_PROFILE)
        user_jid = check_jid(to_user_jid)
        fields = await self._timed(session.get_profile(user_jid))
        profile = Profile.from_fields(user_jid, fields)
        self._listeners.emit(ProfileEvent(data=profile))
        return ProfileResponse(data=profile)

    async def set_user_profile(
        self,
        *,
        name: str | _Unset = UNSET,
        image: object = UNSET,
        status: str | _Unset = UNSET,
        mobile_number: str | _Unset = UNSET,
        email: str | _Unset = UNSET,
        share_contact_details: bool | _Unset = UNSET,
    ) -> ProfileResponse:
        """Change the given fields ("" clears one), keep the others. Raises 400 / 413 before sending anything.

        ``share_contact_details``: True lets every user read the mobile number and email, False (a new user's
        choice) only contacts (users who receive our presence); UNSET keeps the current choice.
        """
        log.debug("set_user_profile fields=%s", [k for k, v in locals().items() if k != "self" and v is not UNSET])
        session = self._request(Input.SET_PROFILE)
        changes: dict[str, str | bool] = {}
        if not isinstance(share_contact_details, _Unset):
            if not isinstance(share_contact_details, bool):
                raise InvalidInputError(f"share_contact_details must be True or False, not {share_contact_details!r}")
            changes["share_contact_details"] = share_contact_details
        if not isinstance(name, _Unset):
            changes["nick_name"] = check_name(name)
        if not isinstance(status, _Unset):
            changes["status"] = check_status(status)
        if not isinstance(mobile_number, _Unset):
            changes["mobile_number"] = check_mobile_number(mobile_number)
        if not isinstance(email, _Unset):
            changes["email"] = check_email(email)
        if not isinstance(image, _Unset):
            changes.update(await self._image_fields(session, image))
        async with self._profile_lock:
            return await self._merge_and_store(session, changes)

    async def _merge_and_store(self, session: TransportSession, changes: dict[str, str | bool]) -> ProfileResponse:
        """Read our stored profile, apply ``changes``, store the result (under ``_profile_lock``)."""
        current = await self._timed(session.get_profile(self._jid))
        wanted = msgspec.structs.replace(current, **changes)
        self._announced_own.append(wanted)  # the server's echo of these fields must not fire a second time
        try:
            stored = await self._timed(session.set_profile(wanted))
        except BaseException:
            self._announced_own.remove(wanted)
            raise
        self._announced_own[:] = [stored]
        profile = Profile.from_fields(self._jid, stored)
        self._listeners.emit(ProfileEvent(data=profile))
        return ProfileResponse(data=profile)

    async def _image_fields(self, session: TransportSession, image: object) -> dict[str, str]:
        """``image`` and ``thumb_image`` for an image argument: a URL as given, a file uploaded or inlined."""
        kind = await anyio.to_thread.run_sync(classify_image, image, self._limits)
        if kind is None:
            return {"image": "", "thumb_image": ""}
        if isinstance(kind, ImageURL):
            return {"image": kind.url, "thumb_image": kind.url}
        prepared: PreparedImage = await anyio.to_thread.run_sync(prepare_image, kind, self._limits)
        name = uuid.uuid4().hex
        url = await self._timed(
            session.upload(prepared.data, filename=f"{name}.{prepared.extension}", content_type=prepared.content_type)
        )
        if url is not None:
            thumb_url = await self._timed(
                session.upload(
                    prepared.thumbnail,
                    filename=f"{name}-thumb.{prepared.extension}",
                    content_type=prepared.thumbnail_content_type,
                )
            )
            return {"image": url, "thumb_image": thumb_url or url}
        size = len(prepared.data) + len(prepared.thumbnail)
        if size > self._limits.max_inline_bytes:
            raise PayloadTooLargeError(
                f"The server has no upload service, and the image and its thumbnail ({size} bytes) exceed the inline "
                f"limit of {self._limits.max_inline_bytes} bytes: use a smaller picture or an http(s) URL"
            )
        return {
            "image": to_data_uri(prepared.data, prepared.content_type),
            "thumb_image": to_data_uri(prepared.thumbnail, prepared.thumbnail_content_type),
        }

    # -- last seen, identity, metadata -----------------------------------------------------------------------

    async def get_last_seen(self, to_user_jid: str) -> LastSeenResponse:
        """Seconds since the user was last online; 0 if online now. Raises 400, 403 (not a contact), 404."""
        log.debug("get_last_seen jid=%r", to_user_jid)
        session = self._request(Input.GET_LAST_SEEN)
        user_jid = check_jid(to_user_jid)
        if user_jid == self._jid:
            seconds = 0
        else:
            seconds = await self._timed(session.get_last_seen(user_jid))
            if self._online.get(user_jid):
                seconds = 0  # presence decides: servers keep answering the old logout time
        return LastSeenResponse(data=LastSeen(user_jid=user_jid, seconds=seconds))

    async def get_current_user_jid(self) -> CurrentJidResponse:
        """The bare JID of the session. Not connected: 401."""
        log.debug("get_current_user_jid")
        self._request(Input.GET_CURRENT_JID)
        return CurrentJidResponse(user_jid=self._jid)

    async def get_metadata(self) -> MetadataResponse:
        """The metadata given to ``register()`` for this user ({} if none)."""
        log.debug("get_metadata")
        session = self._request(Input.GET_METADATA)
        stored = await self._timed(session.get_metadata()) or {}
        return MetadataResponse(data={k: v for k, v in stored.items() if k != SANDBOX_KEY})

    # -- contacts --------------------------------------------------------------------------------------------

    async def add_contact(self, jid: str) -> StatusResponse:
        """Ask ``jid`` to become a mutual contact (accepts their request if they asked first). Raises 400 (malformed or
        our own JID), 404."""
        log.debug("add_contact jid=%r", jid)
        session = self._request(Input.ADD_CONTACT)
        user_jid = self._other_user(jid)
        await self._timed(session.add_contact(user_jid))
        return StatusResponse()

    async def remove_contact(self, jid: str) -> StatusResponse:
        """Remove ``jid`` from the contacts, cancelling the subscriptions both ways. Raises 400."""
        log.debug("remove_contact jid=%r", jid)
        session = self._request(Input.REMOVE_CONTACT)
        user_jid = self._other_user(jid)
        await self._timed(session.remove_contact(user_jid))
        return StatusResponse()

    async def accept_contact(self, jid: str) -> StatusResponse:
        """Accept the contact request of ``jid`` (and subscribe back). Raises 400."""
        return await self._answer(jid, accept=True)

    async def decline_contact(self, jid: str) -> StatusResponse:
        """Decline the contact request of ``jid``. Raises 400."""
        return await self._answer(jid, accept=False)

    async def _answer(self, jid: str, *, accept: bool) -> StatusResponse:
        log.debug("answer_contact_request jid=%r accept=%s", jid, accept)
        session = self._request(Input.ANSWER_CONTACT_REQUEST)
        user_jid = self._other_user(jid)
        await self._timed(session.answer_contact_request(user_jid, accept=accept))
        return StatusResponse()

    async def get_contacts(self) -> ContactsResponse:
        """The roster: every contact with its subscription and whether it is a friend (mutual)."""
        log.debug("get_contacts")
        session = self._request(Input.GET_CONTACTS)
        contacts = await self._timed(session.get_contacts())
        return ContactsResponse(data=list(contacts))

    # -- listeners and events --------------------------------------------------------------------------------

    def add_connection_listener(self, listener: Callable[[ConnectionEvent], object]) -> Callable[[], None]:
        """Call ``listener(ConnectionEvent)`` on each status change; returns its remover."""
        return self._listeners.add(ConnectionEvent, listener)

    def add_user_profile_listener(self, listener: Callable[[ProfileEvent], object]) -> Callable[[], None]:
        """Call ``listener(ProfileEvent)`` for each profile fetched, set or pushed by the server."""
        return self._listeners.add(ProfileEvent, listener)

    def add_contact_request_listener(self, listener: Callable[[ContactRequestEvent], object]) -> Callable[[], None]:
        """Call ``listener(ContactRequestEvent)``; returning True/False (or an awaitable of it) answers it."""
        return self._listeners.add(ContactRequestEvent, listener)

    def add_contact_listener(self, listener: Callable[[ContactEvent], object]) -> Callable[[], None]:
        """Call ``listener(ContactEvent)`` when a contact's subscription changes."""
        return self._listeners.add(ContactEvent, listener)

    @asynccontextmanager
    async def events(self) -> AsyncIterator[MemoryObjectReceiveStream[Event]]:
        """Every event as an anyio receive stream (``async for``), from now until the block ends or the Client closes.

        It buffers 1024 events; beyond that the oldest are dropped, so a slow consumer never blocks the Client.
        """
        stream = self._listeners.open_stream()
        try:
            yield stream.receive
        finally:
            self._listeners.close_stream(stream)
            stream.receive.close()

    # -- internals -------------------------------------------------------------------------------------------

    def _feed(self, event: Input) -> None:
        """Apply ``event`` to the machine (raising its Local error if refused) and announce the new status."""
        user_jid = self._jid
        status = self._machine.handle(event)
        if status is not None:
            self.status = status
            log.debug("status %s", status.value)
            self._listeners.emit(ConnectionEvent(status=status, user_jid=self._jid or user_jid))

    def _other_user(self, jid: str) -> str:
        """``jid`` checked for a contact operation: well-formed, and not our own (400 before sending)."""
        user_jid = check_jid(jid)
        if user_jid == self._jid:
            raise InvalidInputError("You cannot be your own contact: give another user's JID")
        return user_jid

    def _request(self, event: Input) -> TransportSession:
        self._feed(event)
        assert self._session is not None  # the table allows session requests only while CONNECTED
        return self._session

    async def _timed(self, call: Awaitable[_T], *, connect: bool = False) -> _T:
        """Await a transport call under its timeout; raises RequestTimeoutError (408) when it runs out."""
        limit = self._options.connect_timeout if connect else self._options.request_timeout
        try:
            # fail_after without its generator wrapper (this is every request's path): the block is left either by
            # return, by an exception, or by this scope's own deadline -- then the code below runs.
            with anyio.CancelScope(deadline=anyio.current_time() + limit):
                return await call
        except TimeoutError:
            pass  # a TimeoutError from inside the call is a timeout too, as before
        except RostraError:
            raise
        except Exception as exc:  # the transport boundary: a transport's bug must not leak as a bare exception
            log.exception("The transport raised %s; reported as a ServerError (500)", type(exc).__name__)
            raise ServerError(
                f"The transport failed unexpectedly ({type(exc).__name__}): the session is still usable; retry, "
                "and report it to the transport's authors if it persists"
            ) from None
        raise RequestTimeoutError(f"No answer from the server within {limit} s: retry, or raise the timeout option")

    def _sink_for(self, attempt: _Attempt) -> EventSink:
        def sink(event: TransportEvent) -> None:
            self._on_event(attempt, event)

        return sink

    def _on_event(self, attempt: _Attempt, event: TransportEvent) -> None:
        """Turn one transport event into the Client's events (ignoring those of an ended session)."""
        if self.state in (State.CONNECTING, State.RECONNECTING) and self._attempt is attempt:
            self._held.append(event)  # the login under way has not succeeded yet
            return
        if self.state is not State.CONNECTED or self._session is None or attempt is not self._session_attempt:
            return
        if isinstance(event, PresenceChanged):
            self._online[event.user_jid] = event.online
        elif isinstance(event, ProfileChanged):
            if event.user_jid == self._jid and event.fields in self._announced_own:
                return
            if event.user_jid == self._jid:
                self._announced_own[:] = [event.fields]
            self._listeners.emit(ProfileEvent(data=Profile.from_fields(event.user_jid, event.fields)))
        elif isinstance(event, ContactRequestReceived):
            self._listeners.emit(ContactRequestEvent(from_user_jid=event.user_jid), self._answer_with(event.user_jid))
        elif isinstance(event, ContactUpdated):
            if self._contacts.get(event.contact.user_jid) == event.contact and not event.removed:
                return  # servers may push the same roster item twice
            if event.removed:
                self._contacts.pop(event.contact.user_jid, None)
            else:
                self._contacts[event.contact.user_jid] = event.contact
            self._listeners.emit(ContactEvent(data=event.contact))
        elif isinstance(event, SessionLost):
            self._lose_session(event.error)

    def _lose_session(self, error: RostraError) -> None:
        """The transport lost the session: RECONNECTING with a retry task, or IDLE (DISCONNECTED) when it is not
        retried: a ``conflict`` (another login took our place), ``reconnect=False``, or no task group (the Client
        was not entered with ``async with``)."""
        login = self._session_attempt
        session, self._session = self._session, None
        self._session_attempt = None
        self._online.clear()  # presence is unknown until the next session reports it
        group = self._task_group
        if group is not None and session is not None:
            group.start_soon(_close_quietly, session, self._options.connect_timeout)
        if group is None or login is None or not self._reconnect or isinstance(error, ConflictError):
            log.info("session lost, not reconnecting: %s", error.message)
            self._feed(Input.CONNECTION_ENDED)
            self._forget_session()
            return
        log.info("session lost, reconnecting: %s", error.message)
        self._feed(Input.CONNECTION_LOST)
        scope = self._restoring = anyio.CancelScope()
        group.start_soon(self._restore, login, scope)

    async def _restore(self, login: _Attempt, scope: anyio.CancelScope) -> None:
        """While RECONNECTING: wait a backoff, try to log in again, until one attempt ends it (or logout/aclose
        cancels ``scope``). The wait before attempt n is uniform in [0, min(max delay, delay * 2**n)]."""
        failures = 0
        try:
            with scope:
                while self.state is State.RECONNECTING and self._restoring is scope:
                    ceiling = min(self._reconnect_max_delay, self._reconnect_delay * 2.0 ** min(failures, 60))
                    await anyio.sleep(_jitter(ceiling))
                    attempt = self._attempt = _Attempt(login.username, login.password)
                    try:
                        if await self._retry(attempt):
                            return
                    finally:
                        if self._attempt is attempt:
                            self._attempt = None
                    failures += 1
        finally:
            if self._restoring is scope:
                self._restoring = None

    async def _retry(self, attempt: _Attempt) -> bool:
        """One reconnect attempt; True when it ended RECONNECTING (restored, refused, or ended meanwhile)."""
        session = await self._open_for(attempt)
        contacts: list[Contact] | None = None
        if session is not None and self._attempt is attempt:
            try:  # what changed while we were away is announced once, against the contacts we knew
                contacts = list(await self._timed(session.get_contacts()))
            except RostraError as exc:
                attempt.error = exc
        if self._attempt is not attempt or self.state is not State.RECONNECTING:
            if session is not None:  # logout() or aclose() ended it meanwhile
                await _close_quietly(session, self._options.connect_timeout)
            return True
        if session is None or contacts is None:
            self._held.clear()
            if session is not None:
                await _close_quietly(session, self._options.connect_timeout)
            if isinstance(attempt.error, AuthenticationError):
                log.info("reconnect refused: %s", attempt.error.message)
                self._feed(Input.AUTH_FAILED)
                self._forget_session()
                return True
            if isinstance(attempt.error, ConflictError):
                self._feed(Input.CONNECTION_ENDED)
                self._forget_session()
                return True
            log.info("reconnect attempt failed: %s", attempt.error.message if attempt.error else "ended")
            self._feed(Input.CONNECT_FAILED)  # stays RECONNECTING, announces nothing
            return False
        self._session, self._session_attempt, self._jid = session, attempt, session.jid
        self._feed(Input.CONNECT_SUCCEEDED)
        self._reconcile_contacts(contacts)
        held, self._held = self._held, []
        for event in held:
            self._on_event(attempt, event)
        return True

    def _reconcile_contacts(self, contacts: list[Contact]) -> None:
        """After a reconnect: announce each contact that changed, appeared or went while we were away, once."""
        fresh = {contact.user_jid: contact for contact in contacts}
        for user_jid in [jid for jid in self._contacts if jid not in fresh]:
            del self._contacts[user_jid]
            self._listeners.emit(ContactEvent(data=Contact(user_jid=user_jid, subscription="none", is_friend=False)))
        for user_jid, contact in fresh.items():
            if self._contacts.get(user_jid) != contact:
                self._contacts[user_jid] = contact
                self._listeners.emit(ContactEvent(data=contact))

    def _answer_with(self, user_jid: str) -> Callable[[object], None]:
        """The handler of contact-request listener results: the first True/False answers the request."""
        answered = False

        def handle(result: object) -> None:
            nonlocal answered
            if answered or not isinstance(result, bool) or self._task_group is None:
                return
            answered = True
            self._task_group.start_soon(self._answer_in_background, user_jid, result)

        return handle

    async def _answer_in_background(self, user_jid: str, accept: bool) -> None:
        try:
            await self._answer(user_jid, accept=accept)
        except RostraError as exc:
            log.warning("Could not answer the contact request of %s: %s", user_jid, exc.message)


async def _close_quietly(session: TransportSession, limit: float) -> None:
    """Close ``session`` even while being cancelled, for ``limit`` seconds at most (a close that hangs is given up,
    so logout(), register() and aclose() always return); a transport's close never raises."""
    with anyio.move_on_after(limit, shield=True) as scope:
        try:
            await session.close()
        except Exception:
            log.exception("A transport session raised while closing")
    if scope.cancelled_caught:
        log.warning("A transport session did not close within %s s: given up", limit)


def _jitter(ceiling: float) -> float:
    """The wait before a reconnect attempt: uniform in [0, ceiling] ("full jitter"), so clients spread out."""
    return random.uniform(0.0, ceiling)  # noqa: S311 - spreading retries, not a secret


def _ignore(event: TransportEvent) -> None:
    """The sink of the short sessions ``register()`` opens: their events do not concern the app."""


#: Bounds of the time options, in seconds: over a day is a mistake (and overflows the timedelta arithmetic of the
#: libraries underneath); under the floor, reconnect attempts would follow each other without a pause.
_MAX_SECONDS: Final = 86_400
_MIN_RECONNECT_DELAY: Final = 0.01


def _check_timeout(name: str, value: object, minimum: float = 0.0) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
        raise InvalidInputError(f"{name} must be a positive number of seconds, not {value!r}")
    if not minimum <= value <= _MAX_SECONDS:
        raise InvalidInputError(f"{name} must be from {minimum:g} to {_MAX_SECONDS} seconds, not {value!r}")


def _check_ca_file(path: str) -> None:
    """The CA file must exist and hold at least one PEM certificate: checked once, before anything is sent."""
    try:
        ssl.create_default_context(cafile=path)
    except FileNotFoundError:
        raise InvalidInputError(f"ca_file {path!r} does not exist: give the PEM file of the server's CA") from None
    except (ssl.SSLError, OSError, ValueError):
        raise InvalidInputError(
            f"ca_file {path!r} holds no usable PEM certificate: give the PEM file of the server's CA"
        ) from None


def _check_credentials(username: object, password: object) -> None:
    """connect() needs what register() returned: two non-empty strings (checked before anything is sent)."""
    if not isinstance(username, str) or not username:
        raise InvalidInputError("connect() needs the username that register() returned, a non-empty string")
    if not isinstance(password, str) or not password:
        raise InvalidInputError("connect() needs the password that register() returned, a non-empty string")


def _check_domain_option(domain: object) -> None:
    """The ``domain`` option must be a domain name users could live on (checked before anything is sent)."""
    if not isinstance(domain, str) or not domain:
        raise InvalidInputError("domain must be the XMPP domain of the server's users, e.g. 'chat.example.com'")
    try:
        check_domain(domain)
    except InvalidInputError:
        raise InvalidInputError(f"domain {domain!r} is not a valid domain name: give e.g. 'chat.example.com'") from None
