"""One logged-in XMPP-over-WebSocket session: the TransportSession of ``ws://`` and ``wss://``.

Rules (the same behaviour as ``rostra_xmpp._session``, event for event):
- A small anyio loop owns the connection: one task reads messages into the sans-IO stream and dispatches them,
  one sends WebSocket pings. It runs as a system task of the running event loop (asyncio or trio), because a
  session outlives the ``open_session`` call that made it; ``close()`` ends it and waits for it.
- Every request is an IQ with a fresh id and ``options.request_timeout`` (408 when it runs out). A reply is
  matched on id AND sender; a reply from anyone else is ignored.
- Every payload is built and parsed by ``rostra_xmpp_common.mapping``; every error condition goes through it.
- The connection lost without ``close()`` (server close, dropped TCP, stream error, a missing pong, a protocol
  error) gives exactly ONE ``SessionLost``, and every pending request fails at once with ``UnreachableError``.
  A protocol error (``StreamProtocolError``, 500) is what that ``SessionLost`` carries; requests still get 503.
  A stream error ``<conflict/>`` (another login took our resource, RFC 6120 4.9.3.3) carries ``ConflictError``
  (409), which tells the Client not to reconnect.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import random
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import anyio
import anyio.lowlevel
from lxml import etree

from rostra._errors import ConflictError, RequestTimeoutError, RostraError, ServerError, UnreachableError
from rostra._schemas import Contact, Metadata, ProfileFields
from rostra._transport import (
    ContactRequestReceived,
    ContactUpdated,
    EventSink,
    PresenceChanged,
    ProfileChanged,
    SessionLost,
    TransportEvent,
    TransportOptions,
    TransportSession,
)
from rostra_xmpp_common import mapping, upload
from rostra_xmpp_common.namespaces import NS_CAPS, NS_CLIENT, NS_PING
from rostra_xmpp_common.options import carrier_options

from ._errors import StreamProtocolError
from ._stream import StanzaReceived, StreamClosed, StreamErrorReceived, XmppWebSocketStream
from ._websocket import WebSocket, WebSocketClosed

__all__ = ["IqError", "WsSession", "spawn_system_task"]

Element = Any  # lxml.etree._Element

_log = logging.getLogger("rostra_ws")
_log.addHandler(logging.NullHandler())

_CLOSE_TIMEOUT: Final = 2.0
_CAPS_NODE: Final = "urn:rostra:client"
_IQ, _MESSAGE, _PRESENCE = (f"{{{NS_CLIENT}}}{name}" for name in ("iq", "message", "presence"))
_ERROR = f"{{{NS_CLIENT}}}error"
# Built once: a copy (lxml copies in C) is cheaper than building it again for every get_profile.
_PROFILE_ITEMS_REQUEST: Final = mapping.build_profile_items_request()
_PUBLIC_ITEMS_REQUEST: Final = mapping.build_profile_items_request(mapping.PUBLIC_PROFILE_NODE)


class IqError(Exception):
    """An IQ answered with type ``error``: the ``<error>`` element and its parsed parts (internal)."""

    def __init__(self, error: Element) -> None:
        super().__init__("iq error")
        self.element = error
        self.parsed = mapping.parse_stanza_error(error) if error is not None else mapping.StanzaError("cancel", "")


def spawn_system_task(run: Callable[[], Awaitable[None]]) -> None:
    """Run ``run()`` in the current event loop, outside the caller's task (asyncio task / trio system task).

    ``run`` must catch its own exceptions: on trio an escaping one ends the whole run.
    """
    token = anyio.lowlevel.current_token()
    if token.backend_class.__name__ == "TrioBackend":
        import trio  # only present (and only needed) under trio

        trio.lowlevel.spawn_system_task(run)
        return
    loop: Any = token.native_token  # the asyncio event loop
    task = loop.create_task(run())
    _TASKS.add(task)  # asyncio keeps only weak references to tasks
    task.add_done_callback(_TASKS.discard)


_TASKS: set[Any] = set()


def bare(jid: str) -> str:
    """``user@domain`` of ``user@domain/resource`` (lower-cased: Rostra's usernames are ASCII, case-folded)."""
    return jid.partition("/")[0].lower()


def _domain_of(jid: str) -> str:
    return bare(jid).rpartition("@")[2]


def _element(tag: str, attrs: dict[str, str] | None = None) -> Element:
    return etree.Element(f"{{{NS_CLIENT}}}{tag}", attrs or {}, nsmap={None: NS_CLIENT})


class _Pending:
    """One request waiting for its reply."""

    __slots__ = ("done", "lost", "reply", "senders")

    def __init__(self, senders: frozenset[str | None]) -> None:
        self.senders = senders
        self.done = anyio.Event()
        self.reply: Element | None = None
        self.lost: str | None = None


class WsSession(TransportSession):
    """A bound XMPP stream over a WebSocket. Built by ``WsTransport.open_session`` after SASL and bind."""

    def __init__(
        self,
        websocket: WebSocket,
        stream: XmppWebSocketStream,
        full_jid: str,
        options: TransportOptions,
        events: EventSink,
        *,
        ssl_verify: Any = True,
    ) -> None:
        self._ws = websocket
        self._stream = stream
        self._full_jid = full_jid
        self._jid = bare(full_jid)
        self._domain = _domain_of(full_jid)
        self._options = options
        self._events = events
        self._ssl_verify = ssl_verify
        self._ping_interval = carrier_options(options.extra).ping_interval
        self._pending: dict[str, _Pending] = {}
        self._roster: dict[str, tuple[str, str | None]] = {}  # bare JID -> (subscription, ask)
        self._resources: dict[str, set[str]] = {}  # bare JID -> available resources
        self._published: ProfileFields | None = None
        self._node_configured = False  # our profile node configured this session (no replays)
        self._requests: set[str] = set()  # bare JIDs whose subscription request awaits our answer
        self._asked: set[str] = set()  # bare JIDs we asked this session (before the roster push says so)
        self._upload_service: str | bool | None = False  # False: not discovered yet
        self._scope = anyio.CancelScope()
        self._done = anyio.Event()
        self._opened = False
        self._closing = False
        self._sent_close = False
        self._lost: str | None = None

    def __repr__(self) -> str:
        return f"WsSession(jid={self._jid!r}, lost={self._lost is not None}, closing={self._closing})"

    @property
    def jid(self) -> str:
        return self._jid

    # -- life ----------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the loop, read the roster, send available presence (with entity caps). Raises RostraError;
        on failure everything is closed."""
        spawn_system_task(self._run)
        try:
            roster = await self._call("get", mapping.build_roster_query(), operation="connect")
            for contact_item in _roster_items(roster):
                self._apply_roster_item(contact_item)
            await self._send(_available_presence())
        except BaseException:
            self._closing = True
            await self._shutdown(polite=False)
            raise
        self._opened = True

    async def _run(self) -> None:
        try:
            with self._scope:
                async with anyio.create_task_group() as group:
                    group.start_soon(self._keepalive)
                    await self._read_loop()
                    group.cancel_scope.cancel()
        except Exception as exc:  # never escape a system task
            _log.debug("the WebSocket session loop failed", exc_info=exc)
            self._lose(UnreachableError(f"The connection to the XMPP server failed ({type(exc).__name__})"))
        finally:
            self._lose(UnreachableError("The connection to the XMPP server was lost: connect again"))
            self._done.set()

    async def _read_loop(self) -> None:
        while True:
            try:
                message = await self._ws.receive()
                event = self._stream.receive(message)
            except WebSocketClosed as closed:
                self._lose(_lost_error(closed))
                return
            except StreamProtocolError as exc:
                self._lose(exc)
                await self._ws.close()
                return
            if isinstance(event, StanzaReceived):
                await self._dispatch(event.element)
            elif isinstance(event, StreamErrorReceived):
                self._lose(_stream_error(event))
            elif isinstance(event, StreamClosed):
                if not self._sent_close:  # answer the server's <close/>
                    self._sent_close = True
                    await self._send_text_quietly(self._stream.close())
                self._lose(UnreachableError("The XMPP server closed the stream: connect again"))

    async def _keepalive(self) -> None:
        while True:
            await anyio.sleep(self._ping_interval)
            if not await self._ws.ping(self._options.request_timeout):
                self._lose(UnreachableError("The XMPP server stopped answering WebSocket pings: connect again"))
                await self._ws.aclose()
                return

    def _lose(self, error: RostraError) -> None:
        """The connection is gone: fail every pending request now, report ONE SessionLost (unless closing)."""
        if self._lost is not None:
            return
        self._lost = error.message
        for pending in self._pending.values():
            pending.lost = error.message
            pending.done.set()
        if self._opened and not self._closing:
            self._emit(SessionLost(error=error))

    async def _shutdown(self, *, polite: bool) -> None:
        """End the stream (politely: unavailable presence, ``<close/>``, wait for the server's), then the socket."""
        with anyio.CancelScope(shield=True):
            try:
                if polite and self._lost is None:
                    with anyio.move_on_after(_CLOSE_TIMEOUT):
                        await self._send(_element("presence", {"type": "unavailable"}))
                        self._sent_close = True
                        await self._ws.send_text(self._stream.close())
                        await self._done.wait()
                self._scope.cancel()
                await self._ws.close()
                with anyio.move_on_after(_CLOSE_TIMEOUT):
                    await self._done.wait()
            except Exception:  # close never raises, by contract
                _log.debug("error while closing the WebSocket session", exc_info=True)
            finally:
                await self._ws.aclose()

    async def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        await self._shutdown(polite=True)

    # -- sending and requests --------------------------------------------------------------------------------------

    async def _send(self, element: Element) -> None:
        if self._lost is not None:
            raise UnreachableError(f"{self._lost}")
        try:
            text = self._stream.send(element)
        except ValueError:
            raise UnreachableError("The XMPP stream is closing: connect again") from None
        try:
            await self._ws.send_text(text)
        except WebSocketClosed as closed:
            raise _lost_error(closed) from None

    async def _send_text_quietly(self, text: str) -> None:
        with contextlib.suppress(WebSocketClosed):
            await self._ws.send_text(text)

    async def _iq(self, type_: str, payload: Element | None, *, to: str | None = None, operation: str) -> Element:
        """Send an IQ and return the reply's ``iq`` element. Raises ``IqError`` for an error reply,
        ``RequestTimeoutError`` after ``request_timeout``, ``UnreachableError`` when the session is gone."""
        if self._lost is not None or self._closing:
            raise UnreachableError(f"{operation.replace('_', ' ')}: the session is closed: connect again")
        iq_id = self._stream.new_id()
        iq = _element("iq", {"type": type_, "id": iq_id})
        if to is not None:
            iq.set("to", to)
        if payload is not None:
            iq.append(payload)
        pending = _Pending(self._senders_for(to))
        self._pending[iq_id] = pending
        try:
            await self._send(iq)
            # A bare cancel scope is fail_after without its generator wrapper: this is every request's path.
            with anyio.CancelScope(deadline=anyio.current_time() + self._options.request_timeout) as scope:
                await pending.done.wait()
        finally:
            self._pending.pop(iq_id, None)
        if scope.cancelled_caught:
            raise RequestTimeoutError(
                f"{operation.replace('_', ' ')}: no answer from the server in time: retry, or raise the timeout option"
            )
        reply = pending.reply
        if reply is None:
            raise UnreachableError(
                f"{operation.replace('_', ' ')}: {pending.lost or 'the connection to the XMPP server was lost'}"
            )
        if reply.get("type") == "error":
            raise IqError(reply.find(_ERROR))
        return reply

    def _senders_for(self, to: str | None) -> frozenset[str | None]:
        if to is None or (bare(to) == self._jid and "/" not in to):
            return frozenset({None, self._jid, self._full_jid.lower(), self._domain})
        return frozenset({to.lower()})

    async def _call(self, type_: str, payload: Element | None, *, to: str | None = None, operation: str) -> Element:
        """``_iq`` returning the reply's payload (None if empty); an error reply is the mapped RostraError."""
        try:
            reply = await self._iq(type_, payload, to=to, operation=operation)
        except IqError as exc:
            raise self._translate(exc, to, operation) from None
        return reply[0] if len(reply) else None

    def _translate(self, exc: IqError, to: str | None, operation: str) -> RostraError:
        """The RostraError of an error reply; a refused remote domain means: not found from here."""
        if exc.element is None:
            return ServerError(f"{operation.replace('_', ' ')} failed: the server sent an error without a reason")
        remote = to is not None and _domain_of(to) != self._domain
        if remote and exc.parsed.condition in mapping.REMOTE_REFUSED_CONDITIONS:
            return mapping.error_from_condition("remote-server-not-found", operation=operation, text=exc.parsed.text)
        return mapping.error_from_stanza_error(exc.element, operation=operation)

    # -- the Profile API ---------------------------------------------------------------------------------------

    async def get_profile(self, user_jid: str) -> ProfileFields:
        # The owner and the users who receive the owner's presence read the whole profile; the server decides, so
        # a refusal (no longer a contact) falls back to the public copy, which everyone else reads at once.
        to = bare(user_jid)
        if to == self._jid or self._roster.get(to, ("none", None))[0] in ("to", "both"):
            try:
                return await self._read_profile(to, _PROFILE_ITEMS_REQUEST)
            except IqError as exc:
                if exc.parsed.condition not in mapping.FULL_PROFILE_REFUSED or _domain_of(to) != self._domain:
                    return self._no_profile(exc, to)
        try:
            return await self._read_profile(to, _PUBLIC_ITEMS_REQUEST)
        except IqError as exc:
            return self._no_profile(exc, to)

    async def _read_profile(self, to: str, request: Element) -> ProfileFields:
        reply = await self._iq("get", copy.copy(request), to=to, operation="get_profile")
        return mapping.parse_profile_items(reply[0]) if len(reply) else ProfileFields()

    def _no_profile(self, exc: IqError, to: str) -> ProfileFields:
        """Empty fields for a refused read that means "no readable profile"; otherwise raises the mapped error."""
        if exc.parsed.condition in mapping.NO_PROFILE_CONDITIONS and _domain_of(to) == self._domain:
            return ProfileFields()  # no readable profile node (or no such user: servers do not tell)
        raise self._translate(exc, to, "get_profile") from None

    async def set_profile(self, fields: ProfileFields) -> ProfileFields:
        publish = mapping.build_profile_publish(fields)
        stored = mapping.parse_vcard(publish[0][0][0])  # what the server will store: pubsub/publish/item/vcard
        # Known before sending: the server may push our own event ahead of the IQ result.
        previous, self._published = self._published, stored
        try:
            # The public copy first: it sends no events, so undoing it is invisible; the whole profile (whose
            # publish is the contacts' event) only once the copy is in place.
            await self._publish(mapping.PUBLIC_PROFILE_NODE, stored.public())
            try:
                await self._publish(mapping.PROFILE_NODE, stored)
            except BaseException:
                await self._restore_public_copy()
                raise
        except BaseException:
            self._published = previous
            raise
        return stored

    async def _publish(self, node: str, fields: ProfileFields) -> None:
        try:
            for delay in mapping.FIRST_PUBLISH_RETRY_DELAYS:
                try:
                    await self._iq("set", mapping.build_profile_publish(fields, node=node), operation="set_profile")
                    break
                except IqError as exc:
                    if exc.parsed.condition != "item-not-found":
                        raise
                    await anyio.sleep(delay * random.uniform(0.5, 1.5))  # noqa: S311 - jitter, not a secret
            else:
                await self._iq("set", mapping.build_profile_publish(fields, node=node), operation="set_profile")
        except IqError as exc:
            if exc.parsed.condition != "conflict":  # XEP-0060 7.1.5: precondition-not-met
                raise self._translate(exc, None, "set_profile") from None
            # The node exists with another access model (an older Rostra published it open): reconfigure, retry.
            await self._call("set", mapping.build_profile_node_configure(node), operation="set_profile")
            await self._call("set", mapping.build_profile_publish(fields, node=node), operation="set_profile")
            self._node_configured = self._node_configured or node == mapping.PROFILE_NODE
        if node == mapping.PROFILE_NODE and not self._node_configured:
            # Once per session, after the node surely exists: no replay of the stored item (see the mapping).
            try:
                await self._iq("set", mapping.build_profile_node_configure(), operation="set_profile")
            except IqError as exc:  # the profile is stored: a server without the option only replays it
                _log.info("could not configure the profile node: %s", exc.parsed.condition)
            self._node_configured = True

    async def _restore_public_copy(self) -> None:
        """After a failed publish of the whole profile: make the public copy agree with what the server still holds
        (read back, so a publish that did land is kept). Best effort, shielded, bounded by the request timeout."""
        with anyio.CancelScope(shield=True):
            try:
                with anyio.fail_after(2 * self._options.request_timeout):
                    try:
                        held = await self._read_profile(self._jid, _PROFILE_ITEMS_REQUEST)
                    except IqError as exc:
                        if exc.parsed.condition not in mapping.NO_PROFILE_CONDITIONS:
                            raise
                        held = ProfileFields()  # never published: the copy goes back to empty
                    await self._publish(mapping.PUBLIC_PROFILE_NODE, held.public())
            except (IqError, RostraError, TimeoutError) as exc:
                _log.info("could not restore the public copy of the profile: %s", type(exc).__name__)

    async def _find_upload_service(self) -> str | None:
        if self._upload_service is False:
            found: str | None = None
            items = await self._call("get", mapping.build_disco_items_query(), to=self._domain, operation="upload")
            candidates = [self._domain, *(mapping.parse_disco_items(items) if items is not None else [])]
            for candidate in candidates:
                try:
                    reply = await self._iq("get", mapping.build_disco_info_query(), to=candidate, operation="upload")
                except IqError:
                    continue  # one broken component does not hide the others
                if len(reply) and mapping.NS_UPLOAD in mapping.parse_disco_features(reply[0]):
                    found = candidate
                    break
            self._upload_service = found  # discovered once per session
        return self._upload_service if isinstance(self._upload_service, str) else None

    async def upload(self, data: bytes, *, filename: str, content_type: str) -> str | None:
        service = await self._find_upload_service()
        if service is None:
            return None
        request = mapping.build_upload_request(filename, len(data), content_type)
        slot_element = await self._call("get", request, to=service, operation="upload")
        if slot_element is None:
            raise ServerError("upload failed: the server sent an empty upload slot")
        slot = mapping.parse_upload_slot(slot_element)
        await upload.put_file(
            slot.put_url,
            data,
            content_type,
            slot.headers,
            verify=self._ssl_verify,
            timeout=self._options.request_timeout,
        )
        return slot.get_url

    async def get_last_seen(self, user_jid: str) -> int:
        query = await self._call("get", mapping.build_last_activity_query(), to=bare(user_jid), operation="last_seen")
        if query is None:
            raise ServerError("last seen failed: the server sent an empty last activity answer")
        return mapping.parse_last_activity(query)

    async def get_metadata(self) -> Metadata | None:
        query = await self._call("get", mapping.build_private_get(), operation="get_metadata")
        return None if query is None else mapping.parse_private_result(query)

    async def set_metadata(self, metadata: Metadata) -> None:
        await self._call("set", mapping.build_private_set(metadata), operation="set_metadata")

    # -- contacts ------------------------------------------------------------------------------------------------

    async def _presence_to(self, peer: str, type_: str) -> None:
        await self._send(_element("presence", {"to": peer, "type": type_}))

    async def add_contact(self, user_jid: str) -> None:
        peer = bare(user_jid)
        await self._probe_domain(peer, "add_contact")
        if peer not in self._roster:
            await self._call("set", mapping.build_roster_set(peer), operation="add_contact")
        if peer in self._requests:  # their request is waiting: adding them answers it
            self._requests.discard(peer)
            await self._presence_to(peer, "subscribed")
        # No pre-approval (RFC 6121 3.4) otherwise: Prosody 0.12 then records their later request as approved on
        # our side without ever telling them, which leaves a one-sided contact. Their request reaches us instead
        # (at once, or at our next login) and is accepted by the rule in _on_presence.
        self._asked.add(peer)
        await self._presence_to(peer, "subscribe")

    async def answer_contact_request(self, user_jid: str, *, accept: bool) -> None:
        # Accepting is adding them (which answers their request if it is here); declining answers a request that
        # is here and does nothing otherwise: an unasked "subscribed" is a pre-approval (which ejabberd ignores and
        # Prosody keeps), an unasked "unsubscribed" would cancel a friend's subscription.
        if accept:
            await self.add_contact(user_jid)
            return
        peer = bare(user_jid)
        await self._probe_domain(peer, "answer_contact_request")
        if peer in self._requests:
            self._requests.discard(peer)
            await self._presence_to(peer, "unsubscribed")

    async def _probe_domain(self, peer: str, operation: str) -> None:
        """A user of another domain: ask that domain once, now (a presence to an unreachable one fails silently)."""
        if _domain_of(peer) != self._domain:
            await self._call("get", mapping.build_disco_info_query(), to=_domain_of(peer), operation=operation)

    async def remove_contact(self, user_jid: str) -> None:
        # Always asked of the server; removing an unknown entry is a no-op. Neither side's request stands after.
        peer = bare(user_jid)
        self._asked.discard(peer)
        if peer in self._requests:
            # Their request only, no roster entry: the server's roster removal does not decline it (Prosody keeps
            # it pending and would swallow their next request), so decline it first.
            self._requests.discard(peer)
            await self._presence_to(peer, "unsubscribed")
        try:
            await self._iq("set", mapping.build_roster_remove(bare(user_jid)), operation="remove_contact")
        except IqError as exc:
            if exc.parsed.condition != "item-not-found":
                raise self._translate(exc, None, "remove_contact") from None

    async def get_contacts(self) -> Sequence[Contact]:
        query = await self._call("get", mapping.build_roster_query(), operation="get_contacts")
        return [] if query is None else mapping.parse_roster(query)

    # -- what the server sends ---------------------------------------------------------------------------------

    def _emit(self, event: TransportEvent) -> None:
        try:
            self._events(event)
        except Exception:  # a faulty sink must not break the read loop
            _log.exception("the event sink failed on %r", event)

    async def _dispatch(self, stanza: Element) -> None:
        try:
            if stanza.tag == _IQ:
                await self._on_iq(stanza)
            elif stanza.tag == _PRESENCE:
                await self._on_presence(stanza)
            elif stanza.tag == _MESSAGE:
                self._on_message(stanza)
        except RostraError as exc:  # a malformed push is dropped, the session goes on
            _log.info("ignored a stanza the session could not use: %s", exc.message)

    async def _on_iq(self, iq: Element) -> None:
        type_ = iq.get("type")
        sender = iq.get("from")
        if type_ in ("result", "error"):
            pending = self._pending.get(iq.get("id") or "")
            if pending is not None and (sender.lower() if sender else None) in pending.senders:
                pending.reply = iq
                pending.done.set()
            return  # an unknown id, or a reply from the wrong sender: ignored
        if type_ not in ("get", "set") or len(iq) != 1:
            return
        payload = iq[0]
        own = sender is None or (bare(sender) == self._jid and "/" not in sender)
        if type_ == "set" and payload.tag == f"{{{mapping.NS_ROSTER}}}query" and own:
            friends = [jid for item in _roster_items(payload) if (jid := self._apply_roster_item(item))]
            await self._answer(iq, None)
            # Tell a new friend our presence (with entity caps) again, directed. ejabberd delivers our PEP
            # events only to contacts whose caps our session saw in a presence received while the roster said
            # to/both; when the two approvals cross, that presence came too early. (Prosody does not need it.)
            for jid in friends:
                await self._send_quietly(_available_presence(to=jid))
        elif type_ == "get" and payload.tag == f"{{{mapping.NS_DISCO_INFO}}}query":
            node = payload.get("node")
            if node in (None, f"{_CAPS_NODE}#{mapping.entity_caps_ver()}"):
                await self._answer(iq, mapping.build_disco_info_result(node=node))
            else:
                await self._answer_error(iq, "item-not-found")
        elif type_ == "get" and payload.tag == f"{{{NS_PING}}}ping":
            await self._answer(iq, None)
        else:
            await self._answer_error(iq, "service-unavailable")

    async def _answer(self, iq: Element, payload: Element | None) -> None:
        reply = _element("iq", {"type": "result", "id": iq.get("id") or ""})
        if iq.get("from"):
            reply.set("to", iq.get("from"))
        if payload is not None:
            reply.append(payload)
        await self._send_quietly(reply)

    async def _answer_error(self, iq: Element, condition: str) -> None:
        reply = _element("iq", {"type": "error", "id": iq.get("id") or ""})
        if iq.get("from"):
            reply.set("to", iq.get("from"))
        error = etree.SubElement(reply, _ERROR, {"type": "cancel"})
        etree.SubElement(error, f"{{{mapping.NS_STANZAS}}}{condition}", nsmap={None: mapping.NS_STANZAS})
        await self._send_quietly(reply)

    async def _send_quietly(self, element: Element) -> None:
        with contextlib.suppress(UnreachableError):  # the loop reports the loss
            await self._send(element)

    def _apply_roster_item(self, item: Element) -> str | None:
        """Apply one roster item (result or push); a new entry or a changed subscription is a ContactUpdated.

        Returns the contact's JID when this item made it a friend (subscription ``both``), else None.
        """
        jid = bare(item.get("jid") or "")
        if not jid:
            return None
        subscription = item.get("subscription") or "none"
        if subscription == "remove":
            if self._roster.pop(jid, None) is not None:
                self._emit(ContactUpdated(contact=mapping.contact_from_roster(jid, "none"), removed=True))
            return None
        state = (subscription, item.get("ask"))
        contact = mapping.parse_roster_item(item)
        previous = self._roster.get(jid)
        if previous == state:
            return None
        self._roster[jid] = state
        if previous is not None and mapping.our_request_stands(*previous) and not mapping.our_request_stands(*state):
            self._asked.discard(jid)  # our request is over (refused, or they removed us): theirs is for the user
        self._emit(ContactUpdated(contact=contact))
        became_friend = subscription == "both" and (previous is None or previous[0] != "both")
        return jid if became_friend else None

    async def _on_presence(self, presence: Element) -> None:
        sender = presence.get("from")
        if not sender:
            return
        peer = bare(sender)
        type_ = presence.get("type")
        if type_ == "subscribe":
            entry = self._roster.get(peer)
            asked = peer in self._asked or (entry is not None and mapping.our_request_stands(*entry))
            if asked:
                await self._send_quietly(_element("presence", {"to": peer, "type": "subscribed"}))
                return  # someone we added: accepted without asking the user
            self._requests.add(peer)
            self._emit(ContactRequestReceived(user_jid=peer))
            return
        if type_ == "unsubscribe":
            self._requests.discard(peer)  # they withdrew their request (or removed us)
            return
        if peer == self._jid or type_ not in (None, "unavailable", "error"):
            return
        resources = self._resources.setdefault(peer, set())
        was_online = bool(resources)
        if type_ is None:
            resources.add(sender.partition("/")[2])
        elif type_ == "unavailable":
            resources.discard(sender.partition("/")[2])
        else:
            resources.clear()
        if bool(resources) != was_online:
            self._emit(PresenceChanged(user_jid=peer, online=bool(resources)))

    def _on_message(self, message: Element) -> None:
        event = message.find(f"{{{mapping.NS_PUBSUB_EVENT}}}event")
        sender = message.get("from")
        if event is None or not sender:
            return
        fields = mapping.parse_profile_event(event)
        if fields is None:
            return
        user_jid = bare(sender)
        if user_jid == self._jid and fields == self._published:
            return  # the echo of our own publish (other sessions of ours do get it)
        # Only from users whose presence we receive (ourselves included). Prosody keeps notifying a contact who
        # was removed until that contact's presence next changes; the contact must not hear of it.
        entry = self._roster.get(user_jid)
        if user_jid == self._jid or (entry is not None and entry[0] in ("to", "both")):
            self._emit(ProfileChanged(user_jid=user_jid, fields=fields))


def _available_presence(to: str | None = None) -> Element:
    """Our available presence, with entity caps (XEP-0115) so the server sends us PEP profile events."""
    presence = _element("presence") if to is None else _element("presence", {"to": to})
    etree.SubElement(
        presence,
        f"{{{NS_CAPS}}}c",
        {"hash": "sha-1", "node": _CAPS_NODE, "ver": mapping.entity_caps_ver()},
        nsmap={None: NS_CAPS},
    )
    return presence


def _stream_error(event: StreamErrorReceived) -> RostraError:
    """Why the server's stream error ended the session: ``conflict`` is another login with our resource."""
    detail = f"{event.condition}: {event.text}" if event.text else event.condition
    if event.condition == "conflict":
        return ConflictError(
            f"Another login with the same resource replaced this session (stream error {detail}): not reconnecting"
        )
    return UnreachableError(f"The XMPP server ended the stream ({detail}): connect again")


def _lost_error(closed: WebSocketClosed) -> UnreachableError:
    return UnreachableError(f"The connection to the XMPP server was lost ({closed.why}): connect again")


def _roster_items(query: Element | None) -> list[Element]:
    if query is None or query.tag != f"{{{mapping.NS_ROSTER}}}query":
        return []
    return list(query.iterfind(f"{{{mapping.NS_ROSTER}}}item"))


def new_resource() -> str:
    """A resource of our own for each session."""
    return f"rostra-{secrets.token_hex(4)}"
