"""One logged-in XMPP session on aioxmpp: the TransportSession of ``xmpp://`` and ``xmpps://``.

Rules:
- Every request is an IQ with ``options.request_timeout``; every payload is built and parsed by the mapping.
- Server pushes (roster, subscriptions, presence, PEP profile events) reach the sink as TransportEvents.
- The stream lost without ``close()`` gives exactly one ``SessionLost``; the client is then stopped (no silent
  reconnect: the Client decides). A stream error ``<conflict/>`` (another login took our resource, RFC 6120
  4.9.3.3) makes it carry ``ConflictError`` (409), which tells the Client not to reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, NoReturn

import aioxmpp
import aioxmpp.disco
import aioxmpp.disco.xso as disco_xso
import aioxmpp.entitycaps
import aioxmpp.errors
import aioxmpp.httpupload.xso as upload_xso
import aioxmpp.pep
import aioxmpp.presence
import aioxmpp.private_xml.xso as private_xso
import aioxmpp.pubsub
import aioxmpp.pubsub.xso as pubsub_xso
import aioxmpp.roster
import aioxmpp.roster.xso as roster_xso
import anyio

from rostra._errors import ConflictError, RostraError, ServerError, UnreachableError
from rostra._schemas import Contact, Metadata, ProfileFields
from rostra._transport import (
    ContactRequestReceived,
    ContactUpdated,
    EventSink,
    PresenceChanged,
    ProfileChanged,
    SessionLost,
    TransportOptions,
    TransportSession,
)
from rostra_xmpp_common import mapping, upload
from rostra_xmpp_common.options import carrier_options

from ._boundary import PinnedConnector, ServerProtocolError, lost_because, raise_translated, translate
from ._xso import LastActivityQuery, from_element, to_element

__all__ = ["XmppSession"]

_log = logging.getLogger("rostra_xmpp")
_aioxmpp_log = logging.getLogger("rostra_xmpp.aioxmpp")
_CLOSE_TIMEOUT = 2.0


def _condition(exc: aioxmpp.errors.XMPPError) -> str | None:
    """The RFC 6120 name of the error's condition (``item-not-found``, ...), or None when it has none."""
    return str(exc.condition.value[1]) if exc.condition is not None else None


class XmppSession(TransportSession):
    """A connected aioxmpp Client with the services Rostra needs. Build it with ``await XmppSession.open(...)``."""

    def __init__(self, client: aioxmpp.Client, options: TransportOptions, events: EventSink) -> None:
        self._client = client
        self._options = options
        self._events = events
        self._closing = False
        self._lost = False
        self._opened = False  # SessionLost only after open() returned
        self._suspended_by: BaseException | None = None  # why aioxmpp last said the stream failed
        self._published: ProfileFields | None = None
        self._node_configured = False  # our profile node configured this session (no replays)
        self._requests: set[aioxmpp.JID] = set()  # bare JIDs whose subscription request awaits our answer
        self._asked: set[aioxmpp.JID] = set()  # bare JIDs we asked this session (before the roster push says so)
        self._states: dict[aioxmpp.JID, tuple[str, str | None]] = {}  # (subscription, ask) as last announced
        self._upload_service: aioxmpp.JID | bool | None = False  # False: not discovered yet
        self._items_request = from_element(mapping.build_profile_items_request(), pubsub_xso.Request)
        self._public_items_request = from_element(
            mapping.build_profile_items_request(mapping.PUBLIC_PROFILE_NODE), pubsub_xso.Request
        )
        self._roster = client.summon(aioxmpp.RosterClient)
        self._presence = client.summon(aioxmpp.PresenceClient)
        self._presence_server = client.summon(aioxmpp.PresenceServer)
        self._disco = client.summon(aioxmpp.DiscoClient)
        client.summon(aioxmpp.EntityCapsService)
        pubsub = client.summon(aioxmpp.PubSubClient)
        # The claim must be kept: dropping it withdraws the +notify feature (and so the PEP events).
        self._claim = client.summon(aioxmpp.PEPClient).claim_pep_node(mapping.PROFILE_NODE, notify=True)
        pubsub.on_item_published.connect(self._on_item_published)
        self._roster.on_subscribe.connect(self._on_subscribe)
        self._roster.on_unsubscribe.connect(self._on_unsubscribe)
        self._roster.on_entry_added.connect(self._on_entry_changed)
        self._roster.on_entry_subscription_state_changed.connect(self._on_entry_changed)
        self._roster.on_entry_subscription_state_changed.connect(self._on_subscription_changed)
        self._roster.on_entry_removed.connect(self._on_entry_removed)
        self._presence.on_bare_available.connect(self._on_bare_available)
        self._presence.on_bare_unavailable.connect(self._on_bare_unavailable)
        client.on_stream_suspended.connect(self._on_stream_suspended)
        client.on_stream_destroyed.connect(self._on_stream_destroyed)
        client.on_failure.connect(self._on_failure)

    @classmethod
    async def open(
        cls,
        jid: aioxmpp.JID,
        security_layer: Any,
        peer: list[tuple[str, int, PinnedConnector]],
        options: TransportOptions,
        events: EventSink,
    ) -> XmppSession:
        """Connect, authenticate, bind, send available presence; raises aioxmpp exceptions (translated by caller)."""
        client = aioxmpp.Client(
            jid,
            security_layer,
            override_peer=peer,
            max_initial_attempts=1,
            logger=_aioxmpp_log,
            negotiation_timeout=timedelta(seconds=options.connect_timeout),
        )
        # Liveness as on ws://: after ping_interval without a byte from the server, aioxmpp pings; no answer within
        # request_timeout and the stream is dead (aioxmpp's defaults, 60 s + 60 s, noticed a silent server in 120 s).
        client.stream.soft_timeout = timedelta(seconds=carrier_options(options.extra).ping_interval)
        client.stream.round_trip_time = timedelta(seconds=options.request_timeout)
        session = cls(client, options, events)
        try:
            await _start(client, options.connect_timeout, peer[0][2].broken)
        except BaseException:
            session._closing = True
            await session._stop_client()
            raise
        session._presence_server.set_presence(aioxmpp.PresenceState(available=True))
        session._opened = True
        return session

    @property
    def jid(self) -> str:
        return str(self._client.local_jid.bare())

    # -- requests --------------------------------------------------------------------------------------------------

    async def _raw_send(self, iq: aioxmpp.IQ, operation: str) -> Any:
        """Send ``iq`` and return the result payload; aioxmpp's exceptions pass through untranslated.

        Built from aioxmpp's public pieces (a registered response future, then ``enqueue``) rather than
        ``Client.send``: a caller cancelled meanwhile (the Client's own deadline) takes its listener away, so no
        future is left behind to fail unseen when the stream ends ("Future exception was never retrieved"), and
        the common path costs no extra task.
        """
        if self._lost or self._closing:
            raise UnreachableError(f"{operation.replace('_', ' ')}: the session is closed: connect again")
        iq.autoset_id()
        stream = self._client.stream
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        stream.register_iq_response_future(iq.to, iq.id_, reply)
        try:
            self._client.enqueue(iq)
            answer = await asyncio.wait_for(reply, self._options.request_timeout)
        except BaseException:
            with contextlib.suppress(KeyError):
                stream.unregister_iq_response(iq.to, iq.id_)
            if not reply.done():
                reply.cancel()
            elif not reply.cancelled():
                reply.exception()  # seen: it is the error being raised, or one nobody waits for any more
            raise
        return answer.payload

    async def _send(self, iq: aioxmpp.IQ, operation: str) -> Any:
        """Send ``iq`` and return the result payload; every failure is a RostraError."""
        try:
            return await self._raw_send(iq, operation)
        except Exception as exc:
            self._raise(exc, iq.to, operation)

    def _is_remote(self, to: aioxmpp.JID | None) -> bool:
        return to is not None and to.domain != self._client.local_jid.domain

    def _raise(self, exc: BaseException, to: aioxmpp.JID | None, operation: str) -> NoReturn:
        """Translate ``exc``; a server that refuses to talk to ``to``'s remote domain means: not found from here."""
        if (
            self._is_remote(to)
            and isinstance(exc, aioxmpp.errors.XMPPError)
            and _condition(exc) in mapping.REMOTE_REFUSED_CONDITIONS
        ):
            raise mapping.error_from_condition("remote-server-not-found", operation=operation, text=exc.text)
        raise_translated(exc, operation=operation)

    @staticmethod
    def _bare(user_jid: str) -> aioxmpp.JID:
        """The bare JID of ``user_jid``; malformed: ``InvalidInputError`` (the Client validates first)."""
        try:
            return _parse_bare(user_jid)
        except ValueError:
            raise mapping.error_from_condition("jid-malformed", operation="address", text=None) from None

    async def get_profile(self, user_jid: str) -> ProfileFields:
        # The owner and the users who receive the owner's presence read the whole profile; the server decides, so
        # a refusal (no longer a contact) falls back to the public copy, which everyone else reads at once.
        to = self._bare(user_jid)
        item = self._roster.items.get(to)
        if to == self._client.local_jid.bare() or (item is not None and item.subscription in ("to", "both")):
            try:
                return await self._read_profile(to, self._items_request)
            except aioxmpp.errors.XMPPError as exc:
                if _condition(exc) not in mapping.FULL_PROFILE_REFUSED or self._is_remote(to):
                    return self._no_profile(exc, to)
        try:
            return await self._read_profile(to, self._public_items_request)
        except aioxmpp.errors.XMPPError as exc:
            return self._no_profile(exc, to)

    async def _read_profile(self, to: aioxmpp.JID, request: Any) -> ProfileFields:
        """One profile node of ``to``; an error reply passes as aioxmpp's XMPPError, the rest are RostraErrors."""
        iq = aioxmpp.IQ(type_=aioxmpp.IQType.GET, to=to, payload=request)
        try:
            result = await self._raw_send(iq, "get_profile")
        except aioxmpp.errors.XMPPError:
            raise
        except Exception as exc:
            self._raise(exc, to, "get_profile")
        items = result.payload.items if result is not None and result.payload is not None else []
        with translate("get_profile"):
            return mapping.profile_from_payloads(items[0].unregistered_payload) if items else ProfileFields()

    def _no_profile(self, exc: aioxmpp.errors.XMPPError, to: aioxmpp.JID) -> ProfileFields:
        """Empty fields for a refused read that means "no readable profile"; otherwise raises the mapped error."""
        if _condition(exc) not in mapping.NO_PROFILE_CONDITIONS or self._is_remote(to):
            self._raise(exc, to, "get_profile")
        return ProfileFields()  # no readable profile node (or no such user: servers do not tell)

    async def set_profile(self, fields: ProfileFields) -> ProfileFields:
        stored = mapping.parse_vcard(mapping.build_vcard(fields))  # what the server will store
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
                publish = from_element(mapping.build_profile_publish(fields, node=node), pubsub_xso.Request)
                try:
                    await self._raw_send(aioxmpp.IQ(type_=aioxmpp.IQType.SET, payload=publish), "set_profile")
                    break
                except aioxmpp.errors.XMPPError as exc:
                    if exc.condition != aioxmpp.ErrorCondition.ITEM_NOT_FOUND:
                        raise
                    await anyio.sleep(delay * random.uniform(0.5, 1.5))  # noqa: S311 - jitter, not a secret
            else:
                publish = from_element(mapping.build_profile_publish(fields, node=node), pubsub_xso.Request)
                await self._raw_send(aioxmpp.IQ(type_=aioxmpp.IQType.SET, payload=publish), "set_profile")
        except aioxmpp.errors.XMPPError as exc:
            if not _is_precondition_not_met(exc):
                raise_translated(exc, operation="set_profile")
            # The node exists with another access model (an older Rostra published it open): reconfigure, retry.
            owner = from_element(mapping.build_profile_node_configure(node), pubsub_xso.OwnerRequest)
            await self._send(aioxmpp.IQ(type_=aioxmpp.IQType.SET, payload=owner), "set_profile")
            retry = from_element(mapping.build_profile_publish(fields, node=node), pubsub_xso.Request)
            await self._send(aioxmpp.IQ(type_=aioxmpp.IQType.SET, payload=retry), "set_profile")
            self._node_configured = self._node_configured or node == mapping.PROFILE_NODE
        except Exception as exc:
            raise_translated(exc, operation="set_profile")
        if node == mapping.PROFILE_NODE and not self._node_configured:
            # Once per session, after the node surely exists: no replay of the stored item (see the mapping).
            owner = from_element(mapping.build_profile_node_configure(), pubsub_xso.OwnerRequest)
            try:
                await self._raw_send(aioxmpp.IQ(type_=aioxmpp.IQType.SET, payload=owner), "set_profile")
            except aioxmpp.errors.XMPPError as exc:  # the profile is stored: without the option, it is only replayed
                _log.info("could not configure the profile node: %s", exc.condition)
            self._node_configured = True

    async def _restore_public_copy(self) -> None:
        """After a failed publish of the whole profile: make the public copy agree with what the server still holds
        (read back, so a publish that did land is kept). Best effort, shielded, bounded by the request timeout."""
        with anyio.CancelScope(shield=True):
            try:
                with anyio.fail_after(2 * self._options.request_timeout):
                    try:
                        held = await self._read_profile(self._client.local_jid.bare(), self._items_request)
                    except aioxmpp.errors.XMPPError as exc:
                        if _condition(exc) not in mapping.NO_PROFILE_CONDITIONS:
                            raise
                        held = ProfileFields()  # never published: the copy goes back to empty
                    await self._publish(mapping.PUBLIC_PROFILE_NODE, held.public())
            except (aioxmpp.errors.XMPPError, RostraError, TimeoutError) as exc:
                _log.info("could not restore the public copy of the profile: %s", type(exc).__name__)

    async def _find_upload_service(self) -> aioxmpp.JID | None:
        """The HTTP upload (XEP-0363) service of our domain, or None; asked once per session, cached.

        Plain IQs, not aioxmpp's DiscoClient: a DiscoClient query cancelled by its timeout makes aioxmpp report the
        CancelledError in a loop callback (printed on stderr); here a timeout is only our RequestTimeoutError.
        """
        if self._upload_service is False:
            domain = self._client.local_jid.replace(localpart=None, resource=None)
            found: aioxmpp.JID | None = None
            items_query = from_element(mapping.build_disco_items_query(), disco_xso.ItemsQuery)
            items = await self._send(aioxmpp.IQ(type_=aioxmpp.IQType.GET, to=domain, payload=items_query), "upload")
            for candidate in [domain, *(item.jid for item in items.items)]:
                info_query = from_element(mapping.build_disco_info_query(), disco_xso.InfoQuery)
                try:
                    info = await self._raw_send(
                        aioxmpp.IQ(type_=aioxmpp.IQType.GET, to=candidate, payload=info_query), "upload"
                    )
                except aioxmpp.errors.XMPPError:
                    continue  # one broken component does not hide the others
                except Exception as exc:
                    raise_translated(exc, operation="upload")
                if mapping.NS_UPLOAD in info.features:
                    found = candidate
                    break
            self._upload_service = found  # discovered once per session
        return self._upload_service

    async def upload(self, data: bytes, *, filename: str, content_type: str) -> str | None:
        service = await self._find_upload_service()
        if service is None:
            return None
        request = from_element(mapping.build_upload_request(filename, len(data), content_type), upload_xso.Request)
        slot_xso = await self._send(aioxmpp.IQ(type_=aioxmpp.IQType.GET, to=service, payload=request), "upload")
        slot = mapping.parse_upload_slot(to_element(slot_xso))
        verify: Any = self._options.ssl_context or self._options.ca_file or True
        if not self._options.verify_tls:
            verify = False
        await upload.put_file(
            slot.put_url, data, content_type, slot.headers, verify=verify, timeout=self._options.request_timeout
        )
        return slot.get_url

    async def get_last_seen(self, user_jid: str) -> int:
        iq = aioxmpp.IQ(type_=aioxmpp.IQType.GET, to=self._bare(user_jid), payload=LastActivityQuery())
        result = await self._send(iq, "last_seen")
        if result is None:
            raise ServerError("last seen failed: the server sent an empty last activity answer")
        return mapping.parse_last_activity(to_element(result))

    async def get_metadata(self) -> Metadata | None:
        query = from_element(mapping.build_private_get(), private_xso.Query)
        result = await self._send(aioxmpp.IQ(type_=aioxmpp.IQType.GET, payload=query), "get_metadata")
        return None if result is None else mapping.parse_private_result(to_element(result))

    async def set_metadata(self, metadata: Metadata) -> None:
        query = from_element(mapping.build_private_set(metadata), private_xso.Query)
        await self._send(aioxmpp.IQ(type_=aioxmpp.IQType.SET, payload=query), "set_metadata")

    # -- contacts ----------------------------------------------------------------------------------------------------

    async def add_contact(self, user_jid: str) -> None:
        peer = self._bare(user_jid)
        await self._probe_domain(peer, "add_contact")
        with translate("add_contact"):
            if peer not in self._roster.items:
                await self._roster.set_entry(peer, timeout=self._options.request_timeout)
            if peer in self._requests:  # their request is waiting: adding them answers it
                self._requests.discard(peer)
                self._roster.approve(peer)
            # No pre-approval (RFC 6121 3.4) otherwise: Prosody 0.12 then records their later request as approved
            # on our side without ever telling them, which leaves a one-sided contact. Their request reaches us
            # instead (at once, or at our next login) and is accepted by the rule in _on_subscribe.
            self._asked.add(peer)
            self._roster.subscribe(peer)

    async def answer_contact_request(self, user_jid: str, *, accept: bool) -> None:
        # Accepting is adding them (which answers their request if it is here); declining answers a request that
        # is here and does nothing otherwise: an unasked "subscribed" is a pre-approval (which ejabberd ignores and
        # Prosody keeps), an unasked "unsubscribed" would cancel a friend's subscription.
        if accept:
            await self.add_contact(user_jid)
            return
        peer = self._bare(user_jid)
        await self._probe_domain(peer, "answer_contact_request")
        if peer in self._requests:
            self._requests.discard(peer)
            with translate("answer_contact_request"):
                self._client.enqueue(aioxmpp.Presence(type_=aioxmpp.PresenceType.UNSUBSCRIBED, to=peer))

    async def _probe_domain(self, peer: aioxmpp.JID, operation: str) -> None:
        """A user of another domain: ask that domain once, now (a presence to an unreachable one fails silently)."""
        if peer.domain != self._client.local_jid.domain:
            probe = from_element(mapping.build_disco_info_query(), disco_xso.InfoQuery)
            iq = aioxmpp.IQ(type_=aioxmpp.IQType.GET, to=peer.replace(localpart=None), payload=probe)
            await self._send(iq, operation)

    async def remove_contact(self, user_jid: str) -> None:
        # Always asked of the server (aioxmpp's roster cache may lag); removing an unknown entry is a no-op.
        # Neither side's request stands after.
        peer = self._bare(user_jid)
        self._asked.discard(peer)
        if peer in self._requests:
            # Their request only, no roster entry: the server's roster removal does not decline it (Prosody keeps
            # it pending and would swallow their next request), so decline it first.
            self._requests.discard(peer)
            with translate("remove_contact"):
                self._client.enqueue(aioxmpp.Presence(type_=aioxmpp.PresenceType.UNSUBSCRIBED, to=peer))
        query = from_element(mapping.build_roster_remove(str(peer)), roster_xso.Query)
        try:
            await self._raw_send(aioxmpp.IQ(type_=aioxmpp.IQType.SET, payload=query), "remove_contact")
        except aioxmpp.errors.XMPPError as exc:
            if exc.condition != aioxmpp.ErrorCondition.ITEM_NOT_FOUND:
                raise_translated(exc, operation="remove_contact")
        except Exception as exc:
            raise_translated(exc, operation="remove_contact")

    async def get_contacts(self) -> Sequence[Contact]:
        # Asked of the server, not of aioxmpp's cache: roster pushes are applied by a task that may not have run
        # yet when our own roster change returns.
        query = from_element(mapping.build_roster_query(), roster_xso.Query)
        result = await self._send(aioxmpp.IQ(type_=aioxmpp.IQType.GET, payload=query), "get_contacts")
        return mapping.parse_roster(to_element(result))

    # -- pushes from the server ------------------------------------------------------------------------------------

    def _emit(self, event: Any) -> None:
        try:
            self._events(event)
        except Exception:  # a faulty sink must not break aioxmpp's dispatch
            _log.exception("the event sink failed on %r", event)

    def _on_item_published(self, jid: aioxmpp.JID, node: str, item: Any, *, message: Any = None) -> None:
        if node != mapping.PROFILE_NODE:
            return
        try:
            fields = mapping.profile_from_payloads(item.unregistered_payload)
        except RostraError:
            _log.info("ignored a malformed profile event from %s", jid)
            return
        user_jid = str(jid.bare())
        if user_jid == self.jid and fields == self._published:
            return  # the echo of our own publish (other sessions of ours do get it)
        # Decided on the next loop turn: aioxmpp applies a roster push in a task of its own, which a push that
        # arrived before this event has queued but maybe not yet run.
        asyncio.get_running_loop().call_soon(self._emit_profile, jid.bare(), ProfileChanged(user_jid, fields))

    def _emit_profile(self, peer: aioxmpp.JID, event: ProfileChanged) -> None:
        # Only from users whose presence we receive (ourselves included). Prosody keeps notifying a contact who
        # was removed until that contact's presence next changes; the contact must not hear of it.
        item = self._roster.items.get(peer)
        if peer == self._client.local_jid.bare() or (item is not None and item.subscription in ("to", "both")):
            self._emit(event)

    def _on_subscribe(self, stanza: aioxmpp.Presence) -> None:
        peer = stanza.from_.bare()
        item = self._roster.items.get(peer)
        asked = peer in self._asked or (item is not None and mapping.our_request_stands(item.subscription, item.ask))
        if asked:
            self._roster.approve(peer)  # someone we added: accepted without asking the user
            return
        self._requests.add(peer)
        self._emit(ContactRequestReceived(user_jid=str(peer)))

    def _on_unsubscribe(self, stanza: aioxmpp.Presence) -> None:
        self._requests.discard(stanza.from_.bare())  # they withdrew their request (or removed us)

    def _on_entry_changed(self, item: Any) -> None:
        previous, state = self._states.get(item.jid), (item.subscription, item.ask)
        self._states[item.jid] = state
        if previous is not None and mapping.our_request_stands(*previous) and not mapping.our_request_stands(*state):
            self._asked.discard(item.jid)  # our request is over (refused, or they removed us): theirs is for the user
        self._emit(ContactUpdated(contact=_contact(item)))

    def _on_subscription_changed(self, item: Any) -> None:
        # Tell a new friend our presence (with entity caps) again, directed. ejabberd delivers our PEP events
        # only to contacts whose caps our session saw in a presence received while the roster said to/both;
        # when the two approvals cross, the only presence it saw came too early and the friend gets no
        # profile events. Prosody does not need it; it costs one stanza per new friendship.
        if item.subscription != "both" or self._closing or self._lost:
            return
        presence = self._presence_server.make_stanza()
        presence.to = item.jid
        self._client.enqueue(presence)

    def _on_entry_removed(self, item: Any) -> None:
        self._states.pop(item.jid, None)
        gone = mapping.contact_from_roster(str(item.jid), "none")
        self._emit(ContactUpdated(contact=gone, removed=True))

    def _on_bare_available(self, stanza: aioxmpp.Presence) -> None:
        peer = stanza.from_.bare()
        if peer != self._client.local_jid.bare():
            self._emit(PresenceChanged(user_jid=str(peer), online=True))

    def _on_bare_unavailable(self, stanza: aioxmpp.Presence) -> None:
        peer = stanza.from_.bare()
        if peer != self._client.local_jid.bare():
            self._emit(PresenceChanged(user_jid=str(peer), online=False))

    def _lose(self, reason: BaseException | None) -> None:
        if self._closing or self._lost or not self._opened:
            return
        self._lost = True
        self._emit(SessionLost(error=_loss_error(reason)))
        self._client.stop()

    def _on_stream_suspended(self, reason: BaseException | None = None) -> None:
        # aioxmpp tells why here (the stream's exception); on_stream_destroyed, which follows, carries no reason.
        self._suspended_by = reason

    def _on_stream_destroyed(self, reason: BaseException | None = None) -> None:
        self._lose(reason if reason is not None else self._suspended_by)

    def _on_failure(self, err: BaseException) -> None:
        self._lose(err)

    # -- the end -------------------------------------------------------------------------------------------------------

    async def _stop_client(self) -> None:
        client = self._client
        if not client.running:
            return
        stopped = client.on_stopped.future()
        failed = client.on_failure.future()
        client.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait([stopped, failed], timeout=_CLOSE_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        for fut in (stopped, failed):
            if fut.done() and not fut.cancelled():
                fut.exception()  # retrieved: no "Future exception was never retrieved"
            fut.cancel()

    async def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        try:
            if not self._lost and self._client.established:
                token = self._presence_server.set_presence(aioxmpp.PresenceState(available=False))
                if token is not None:  # let the unavailable presence leave before the stream ends
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(token, _CLOSE_TIMEOUT)
            await self._stop_client()
        except Exception:  # close never raises, by contract
            _log.debug("error while closing the XMPP session", exc_info=True)


@functools.lru_cache(maxsize=4096)
def _parse_bare(user_jid: str) -> aioxmpp.JID:
    # aioxmpp's stringprep costs about 0.5 ms per JID: more than the whole round trip to a local server.
    # JIDs are immutable values, so each string is prepared once.
    return aioxmpp.JID.fromstr(user_jid).bare()


async def _start(client: aioxmpp.Client, wait: float, broken: asyncio.Future[aioxmpp.errors.StreamError]) -> None:
    """Start ``client``; return once its stream is established, or raise why not (``TimeoutError`` after timeout,
    ``ServerProtocolError`` at once when the stream refused what the server sent: aioxmpp would only try again)."""
    established = client.on_stream_established.future()
    failed = client.on_failure.future()
    client.start()
    try:
        done, _ = await asyncio.wait([established, failed, broken], timeout=wait, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for fut in (established, failed):
            fut.cancel()
    if failed in done:
        raise failed.result()
    if broken in done and established not in done:
        raise ServerProtocolError(broken.result())
    if established not in done:
        raise TimeoutError


def _loss_error(reason: BaseException | None) -> RostraError:
    """What a lost stream's ``SessionLost`` carries: ``ConflictError`` for a stream error ``<conflict/>``."""
    conflict = aioxmpp.errors.StreamErrorCondition.CONFLICT
    if isinstance(reason, aioxmpp.errors.StreamError) and reason.condition == conflict:
        return ConflictError(
            "Another login with the same resource replaced this session (stream error conflict): not reconnecting"
        )
    refused = lost_because(reason)
    if refused is not None:
        return refused
    why = type(reason).__name__ if reason is not None else "stream closed"
    return UnreachableError(f"The connection to the XMPP server was lost ({why}): connect again")


def _is_precondition_not_met(exc: aioxmpp.errors.XMPPError) -> bool:
    # XEP-0060 7.1.5: conflict + <precondition-not-met/>. aioxmpp drops application conditions it does not know,
    # and a publish with options cannot conflict for another reason, so the defined condition decides.
    return bool(exc.condition == aioxmpp.ErrorCondition.CONFLICT)


def _contact(item: Any) -> Contact:
    return mapping.contact_from_roster(str(item.jid), item.subscription, item.ask)
