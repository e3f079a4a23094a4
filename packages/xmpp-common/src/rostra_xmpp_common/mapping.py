"""The ONE mapping between Rostra's schemas and XMPP payloads, shared by every XMPP carrier.

Rules:
- Sans-IO: lxml elements in, lxml elements (or Rostra schemas) out. No aioxmpp, no sockets, no clocks.
- Builders produce the payload (the child of an IQ, a message or a pubsub item), never a whole stanza: each
  carrier wraps them in its own stanzas.
- Parsers of what the network sent are total: a malformed payload raises ``ServerError``, never anything else.
- Text round-trips exactly: what a builder writes, the matching parser gives back unchanged.
- Every XMPP error condition becomes a ``RostraError`` here, in ``error_from_condition``, and nowhere else.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from base64 import b64encode
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from lxml import etree

from rostra._errors import (
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
from rostra._schemas import Contact, Metadata, MetadataValue, ProfileFields, Subscription

# Re-exported for compatibility: these names were defined here before ``namespaces`` existed.
from .namespaces import (
    NODE_CONFIG_FORM,
    NS_DATA,
    NS_DISCO_INFO,
    NS_DISCO_ITEMS,
    NS_LAST,
    NS_METADATA,
    NS_PING,
    NS_PRIVATE,
    NS_PROFILE,
    NS_PUBSUB,
    NS_PUBSUB_EVENT,
    NS_PUBSUB_OWNER,
    NS_REGISTER,
    NS_ROSTER,
    NS_STANZAS,
    NS_UPLOAD,
    NS_VCARD4,
    PROFILE_NODE,
    PUBLIC_PROFILE_NODE,
    PUBLISH_OPTIONS_FORM,
)

__all__ = [
    "ACCESS_MODELS",
    "CLIENT_FEATURES",
    "FULL_PROFILE_REFUSED",
    "NS_DATA",
    "NS_DISCO_INFO",
    "NS_DISCO_ITEMS",
    "NS_LAST",
    "NS_METADATA",
    "NS_PRIVATE",
    "NS_PUBSUB",
    "NS_PUBSUB_EVENT",
    "NS_PUBSUB_OWNER",
    "NS_REGISTER",
    "NS_ROSTER",
    "NS_STANZAS",
    "NS_UPLOAD",
    "NO_PROFILE_CONDITIONS",
    "NS_VCARD4",
    "PROFILE_ITEM_ID",
    "PROFILE_NODE",
    "PUBLIC_PROFILE_NODE",
    "REMOTE_REFUSED_CONDITIONS",
    "StanzaError",
    "UploadSlot",
    "build_disco_info_query",
    "build_disco_info_result",
    "build_disco_items_query",
    "build_last_activity_query",
    "build_metadata",
    "build_private_get",
    "build_private_set",
    "build_profile_items_request",
    "build_profile_node_configure",
    "build_profile_publish",
    "build_publish_options",
    "build_register_query",
    "build_roster_query",
    "build_roster_remove",
    "build_roster_set",
    "build_upload_request",
    "build_vcard",
    "contact_from_roster",
    "entity_caps_ver",
    "error_from_condition",
    "error_from_stanza_error",
    "our_request_stands",
    "parse_disco_features",
    "parse_disco_items",
    "parse_last_activity",
    "parse_metadata",
    "parse_private_result",
    "parse_profile_event",
    "parse_profile_items",
    "parse_roster",
    "parse_roster_item",
    "parse_stanza_error",
    "parse_upload_slot",
    "parse_vcard",
    "profile_from_payloads",
]

Element = Any  # lxml.etree._Element (lxml ships no type information)

PROFILE_ITEM_ID: Final = "current"
_THUMBNAIL_TYPE: Final = "x-thumbnail"

#: What a Rostra client advertises (disco#info, entity caps): the ``+notify`` makes PEP push profile changes.
CLIENT_FEATURES: Final[tuple[str, ...]] = (
    NS_DISCO_INFO,
    f"{PROFILE_NODE}+notify",
    NS_PING,
)

# XML 1.0 Char production: anything outside cannot be carried by XMPP at all.
_XML_ILLEGAL = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _q(ns: str, tag: str) -> str:
    return f"{{{ns}}}{tag}"


def _text(value: str, what: str) -> str:
    if _XML_ILLEGAL.search(value):
        raise InvalidInputError(f"{what} holds a character XML cannot carry (a control character): remove it")
    return value


def _sub(parent: Element, ns: str, tag: str, text: str | None = None, **attrs: str) -> Element:
    child = etree.SubElement(parent, _q(ns, tag), attrs)
    if text is not None:
        child.text = text
    return child


def _expect(element: Element, ns: str, tag: str, what: str) -> None:
    if not isinstance(getattr(element, "tag", None), str) or element.tag != _q(ns, tag):
        raise ServerError(f"The server sent a malformed {what}: expected <{tag} xmlns='{ns}'>")


# -- in-band registration (XEP-0077) -------------------------------------------------------------------------


def build_register_query(username: str, password: str) -> Element:
    """``<query xmlns='jabber:iq:register'><username/><password/></query>``, the payload of an IQ set."""
    query = etree.Element(_q(NS_REGISTER, "query"), nsmap={None: NS_REGISTER})
    _sub(query, NS_REGISTER, "username", _text(username, "The username"))
    _sub(query, NS_REGISTER, "password", _text(password, "The password"))
    return query


# -- the profile: PEP vCard4 (XEP-0163, XEP-0292) -------------------------------------------------------------
#
# Two PEP nodes hold one profile (docs/architecture.md): the whole vCard on PROFILE_NODE (access model
# ``presence``: the owner and the users who receive the owner's presence; its changes are the contacts' profile
# events), and its public copy (``ProfileFields.public()``: mobile number and email left out unless the owner
# shares them) on PUBLIC_PROFILE_NODE (access model ``open``, no events). A reader who is neither the owner nor a
# contact reads the public copy.
#
# What a vCard from the network may hold is checked for shape as it is read: a value an app would act on (load an
# image, dial, mail) that is not of its kind reads "" (an image that is not an http(s) URL or a base64 PNG/JPEG
# ``data:`` URI, a tel: that is not E.164, an email without the form local@domain.tld); a value element with
# child elements reads ""; name and status are text, kept as stored. Everything Rostra writes passes unchanged.


def build_vcard(fields: ProfileFields) -> Element:
    """The vCard4 element holding ``fields``; an empty field is left out (so it reads back as "")."""
    vcard = etree.Element(_q(NS_VCARD4, "vcard"), nsmap={None: NS_VCARD4})
    if fields.nick_name:
        nick = _sub(vcard, NS_VCARD4, "nickname")
        _sub(nick, NS_VCARD4, "text", _text(fields.nick_name, "The name"))
    if fields.image:
        photo = _sub(vcard, NS_VCARD4, "photo")
        _sub(photo, NS_VCARD4, "uri", _text(fields.image, "The image"))
    if fields.thumb_image:
        thumb = _sub(vcard, NS_VCARD4, "photo")
        type_ = _sub(_sub(thumb, NS_VCARD4, "parameters"), NS_VCARD4, "type")
        _sub(type_, NS_VCARD4, "text", _THUMBNAIL_TYPE)
        _sub(thumb, NS_VCARD4, "uri", _text(fields.thumb_image, "The thumbnail"))
    if fields.status:
        note = _sub(vcard, NS_VCARD4, "note")
        _sub(note, NS_VCARD4, "text", _text(fields.status, "The status"))
    if fields.mobile_number:
        tel = _sub(vcard, NS_VCARD4, "tel")
        _sub(tel, NS_VCARD4, "uri", "tel:" + _text(fields.mobile_number, "The mobile number"))
    if fields.email:
        email = _sub(vcard, NS_VCARD4, "email")
        _sub(email, NS_VCARD4, "text", _text(fields.email, "The email"))
    if fields.share_contact_details:
        etree.SubElement(vcard, _SHARE, nsmap={None: NS_PROFILE})
    return vcard


_V = f"{{{NS_VCARD4}}}"
_V_VCARD, _V_TEXT, _V_URI = _V + "vcard", _V + "text", _V + "uri"
_V_PARAMETERS, _V_TYPE = _V + "parameters", _V + "type"
_SHARE: Final = _q(NS_PROFILE, "share-contact-details")
# vCard4 property -> (ProfileFields attribute, the child holding its value). Read in ONE pass: get_profile is hot.
_V_FIELDS: Final = {
    _V + "nickname": ("nick_name", _V_TEXT),
    _V + "note": ("status", _V_TEXT),
    _V + "tel": ("mobile_number", _V_URI),
    _V + "email": ("email", _V_TEXT),
}
_E164: Final = re.compile(r"\+[1-9][0-9]{1,14}")
_EMAIL: Final = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_URL_SPOILERS: Final = re.compile(r"[\s\x00-\x1f\x7f]")
_IMAGE_MAGIC: Final = {"data:image/png;base64,": b"\x89PNG\r\n\x1a\n", "data:image/jpeg;base64,": b"\xff\xd8\xff"}


# Children are looked up with iterchildren(tag) (done in C), not find() (an ElementPath per call): this is hot.
def _value(element: Element, child_tag: str) -> str:
    """The text of the first ``child_tag`` child; "" if there is none, or if it holds elements (not a value)."""
    child = next(element.iterchildren(child_tag), None)
    return "" if child is None or len(child) else str(child.text or "")


def _is_thumbnail(photo: Element) -> bool:
    """True if some parameters/type/text child of the photo says x-thumbnail."""
    return any(
        text.text == _THUMBNAIL_TYPE
        for parameters in photo.iterchildren(_V_PARAMETERS)
        for type_ in parameters.iterchildren(_V_TYPE)
        for text in type_.iterchildren(_V_TEXT)
    )


def _readable_image(uri: str) -> str:
    """``uri`` if it is an http(s) URL or a base64 PNG/JPEG ``data:`` URI whose bytes are that image type, else ""."""
    head = uri[:23].lower()
    if head.startswith(("http://", "https://")):
        return "" if _URL_SPOILERS.search(uri) else uri
    for prefix, magic in _IMAGE_MAGIC.items():
        if head.startswith(prefix):
            try:
                data = binascii.a2b_base64(uri[len(prefix) :], strict_mode=True)
            except (binascii.Error, ValueError):
                return ""
            return uri if data.startswith(magic) else ""
    return ""


def parse_vcard(vcard: Element) -> ProfileFields:
    """The ProfileFields a vCard4 element holds (the first of each property, checked for shape as the comment
    above says). ``ServerError`` if not a vCard4."""
    if getattr(vcard, "tag", None) != _V_VCARD:
        raise ServerError(f"The server sent a malformed profile (vCard4): expected <vcard xmlns='{NS_VCARD4}'>")
    values: dict[str, Any] = {}
    for prop in vcard:
        tag = prop.tag
        if tag == _V + "photo":
            key = "thumb_image" if _is_thumbnail(prop) else "image"
            if key not in values:
                values[key] = _readable_image(_value(prop, _V_URI))
        elif (field := _V_FIELDS.get(tag)) is not None and field[0] not in values:
            values[field[0]] = _value(prop, field[1])
        elif tag == _SHARE:
            values["share_contact_details"] = True
    if "mobile_number" in values:
        number = values["mobile_number"].removeprefix("tel:")
        values["mobile_number"] = number if _E164.fullmatch(number) else ""
    if "email" in values and not _EMAIL.fullmatch(values["email"]):
        values["email"] = ""
    return ProfileFields(**values)


def _node_form(form_type: str, *, access_model: str, no_replay: bool) -> Element:
    form = etree.Element(_q(NS_DATA, "x"), {"type": "submit"}, nsmap={None: NS_DATA})
    _sub(_sub(form, NS_DATA, "field", var="FORM_TYPE", type="hidden"), NS_DATA, "value", form_type)
    _sub(_sub(form, NS_DATA, "field", var="pubsub#access_model"), NS_DATA, "value", access_model)
    if no_replay:
        _sub(_sub(form, NS_DATA, "field", var="pubsub#send_last_published_item"), NS_DATA, "value", "never")
    return form


#: Each profile node's access model: the whole profile for contacts, its public copy for everyone.
ACCESS_MODELS: Final = {PROFILE_NODE: "presence", PUBLIC_PROFILE_NODE: "open"}


def build_publish_options(node: str = PROFILE_NODE) -> Element:
    """The publish-options data form: the node's access model (``ACCESS_MODELS``).

    (Only that: ejabberd 23.01 refuses ``send_last_published_item`` in publish-options; the node configuration
    below sets it.)
    """
    return _node_form(PUBLISH_OPTIONS_FORM, access_model=ACCESS_MODELS[node], no_replay=False)


def build_profile_node_configure(node: str = PROFILE_NODE) -> Element:
    """The ``<pubsub xmlns='...#owner'>`` payload of the IQ set configuring one of our profile nodes: its access
    model, and its item never replayed (``send_last_published_item=never``).

    Profile events are for changes: without the second, the server pushes the stored item again at every login and
    to every new contact, which would reach the app as a profile event that changed nothing. Sent after a session's
    first publish, and when a publish with options fails with ``precondition-not-met`` (another access model, e.g.
    a node published by an older Rostra with ``open``).
    """
    pubsub = etree.Element(_q(NS_PUBSUB_OWNER, "pubsub"), nsmap={None: NS_PUBSUB_OWNER})
    configure = _sub(pubsub, NS_PUBSUB_OWNER, "configure", node=node)
    configure.append(_node_form(NODE_CONFIG_FORM, access_model=ACCESS_MODELS[node], no_replay=True))
    return pubsub


#: ejabberd 23.01 answers ``item-not-found`` to some of several FIRST publishes to new PEP nodes made at the same
#: instant (the node's creation races; measured: 4 of 5 concurrent new users), and takes the same publish a moment
#: later. Carriers publish again after these delays (seconds, with jitter) before giving up.
FIRST_PUBLISH_RETRY_DELAYS = (0.05, 0.1, 0.2)


def build_profile_publish(fields: ProfileFields, *, node: str = PROFILE_NODE, with_options: bool = True) -> Element:
    """The ``<pubsub>`` payload of the IQ set publishing ``fields`` as item ``current`` of ``node``.

    For PUBLIC_PROFILE_NODE give the public copy (``fields.public()``): this builder writes what it is given.
    """
    pubsub = etree.Element(_q(NS_PUBSUB, "pubsub"), nsmap={None: NS_PUBSUB})
    publish = _sub(pubsub, NS_PUBSUB, "publish", node=node)
    _sub(publish, NS_PUBSUB, "item", id=PROFILE_ITEM_ID).append(build_vcard(fields))
    if with_options:
        _sub(pubsub, NS_PUBSUB, "publish-options").append(build_publish_options(node))
    return pubsub


def build_profile_items_request(node: str = PROFILE_NODE) -> Element:
    """The ``<pubsub>`` payload of the IQ get reading a user's item of ``node`` (the whole profile by default)."""
    pubsub = etree.Element(_q(NS_PUBSUB, "pubsub"), nsmap={None: NS_PUBSUB})
    _sub(pubsub, NS_PUBSUB, "items", node=node, max_items="1")
    return pubsub


def profile_from_payloads(payloads: Iterable[Element]) -> ProfileFields:
    """The profile among an item's payload elements; empty fields if there is no vCard4 among them."""
    for payload in payloads:
        if getattr(payload, "tag", None) == _q(NS_VCARD4, "vcard"):
            return parse_vcard(payload)
    return ProfileFields()


_PUBSUB_ITEMS, _PUBSUB_ITEM = _q(NS_PUBSUB, "items"), _q(NS_PUBSUB, "item")


def parse_profile_items(pubsub: Element) -> ProfileFields:
    """The profile in an items result (``<pubsub><items><item><vcard>``); none there -> empty fields."""
    _expect(pubsub, NS_PUBSUB, "pubsub", "profile items result")
    # The first <item> of any <items> child (what find('items/item') gives), looked up in C.
    found = (item for items in pubsub.iterchildren(_PUBSUB_ITEMS) for item in items.iterchildren(_PUBSUB_ITEM))
    item = next(found, None)
    return ProfileFields() if item is None else profile_from_payloads(item)


def parse_profile_event(event: Element) -> ProfileFields | None:
    """The profile a PEP event carries; None if the event is about another node or holds no item."""
    _expect(event, NS_PUBSUB_EVENT, "event", "pubsub event")
    items = event.find(_q(NS_PUBSUB_EVENT, "items"))
    if items is None or items.get("node") != PROFILE_NODE:
        return None
    item = items.find(_q(NS_PUBSUB_EVENT, "item"))
    return None if item is None else profile_from_payloads(item)


# -- last activity (XEP-0012) ---------------------------------------------------------------------------------


def build_last_activity_query() -> Element:
    """``<query xmlns='jabber:iq:last'/>``, the payload of an IQ get."""
    return etree.Element(_q(NS_LAST, "query"), nsmap={None: NS_LAST})


def parse_last_activity(query: Element) -> int:
    """Seconds since the entity was last active. Raises ``ServerError`` on a missing or invalid count."""
    _expect(query, NS_LAST, "query", "last activity answer")
    raw = query.get("seconds")
    if raw is None or not raw.isascii() or not raw.isdigit():
        raise ServerError("The server sent a last activity answer without a valid 'seconds' count")
    return int(raw)


# -- registration metadata in private XML storage (XEP-0049) -------------------------------------------------

_TYPE_NAMES: Final = {bool: "bool", int: "int", float: "float", str: "str"}


def _encode_value(value: MetadataValue) -> tuple[str, str]:
    kind = _TYPE_NAMES.get(type(value))
    if kind is None:
        raise InvalidInputError("Metadata values must be str, bool, int or float")
    if isinstance(value, bool):
        return kind, "true" if value else "false"
    if isinstance(value, float):
        return kind, repr(value)
    return kind, _text(str(value), "A metadata value")


def _decode_value(kind: str | None, raw: str) -> MetadataValue:
    try:
        if kind == "str":
            return raw
        if kind == "bool" and raw in ("true", "false"):
            return raw == "true"
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError:
        pass
    raise ServerError(f"The server sent a metadata entry of unknown type {kind!r} or bad value: re-register it")


def build_metadata(metadata: Mapping[str, MetadataValue]) -> Element:
    """``<rostra xmlns='urn:rostra:metadata:0' version='0'>`` with one typed ``<entry>`` per key."""
    rostra = etree.Element(_q(NS_METADATA, "rostra"), {"version": "0"}, nsmap={None: NS_METADATA})
    for key, value in metadata.items():
        kind, raw = _encode_value(value)
        _sub(rostra, NS_METADATA, "entry", raw, key=_text(key, "A metadata key"), type=kind)
    return rostra


def parse_metadata(rostra: Element) -> Metadata | None:
    """The metadata a ``<rostra>`` element holds; None for the empty element a server answers before any write."""
    _expect(rostra, NS_METADATA, "rostra", "metadata element")
    if rostra.get("version") is None and len(rostra) == 0:
        return None
    metadata: Metadata = {}
    for entry in rostra.iterfind(_q(NS_METADATA, "entry")):
        key = entry.get("key")
        if key is None:
            raise ServerError("The server sent a metadata entry without a key")
        metadata[key] = _decode_value(entry.get("type"), entry.text or "")
    return metadata


def build_private_get() -> Element:
    """The ``<query xmlns='jabber:iq:private'>`` payload of the IQ get reading our metadata."""
    query = etree.Element(_q(NS_PRIVATE, "query"), nsmap={None: NS_PRIVATE})
    query.append(etree.Element(_q(NS_METADATA, "rostra"), nsmap={None: NS_METADATA}))
    return query


def build_private_set(metadata: Mapping[str, MetadataValue]) -> Element:
    """The ``<query xmlns='jabber:iq:private'>`` payload of the IQ set storing ``metadata``."""
    query = etree.Element(_q(NS_PRIVATE, "query"), nsmap={None: NS_PRIVATE})
    query.append(build_metadata(metadata))
    return query


def parse_private_result(query: Element) -> Metadata | None:
    """The metadata in a private storage result; None if nothing was stored."""
    _expect(query, NS_PRIVATE, "query", "private storage result")
    rostra = query.find(_q(NS_METADATA, "rostra"))
    return None if rostra is None else parse_metadata(rostra)


# -- roster (RFC 6121) ---------------------------------------------------------------------------------------

_SUBSCRIPTIONS: Final[dict[str, Subscription]] = {"none": "none", "to": "to", "from": "from", "both": "both"}


def our_request_stands(subscription: str | None, ask: str | None) -> bool:
    """Whether a roster entry shows our subscription request to the contact pending (``ask``) or granted (to/both):
    then a request of theirs is answered for the user (someone we asked); once it shows neither, it is the user's."""
    return ask == "subscribe" or subscription in ("to", "both")


def contact_from_roster(user_jid: str, subscription: str | None, ask: str | None = None) -> Contact:
    """A roster entry as a Contact: a friend is a mutual subscription (``both``). ``ask`` does not change that."""
    del ask  # a pending request is still 'none'/'from' until the peer approves
    sub = _SUBSCRIPTIONS.get(subscription or "none")
    if sub is None:
        raise ServerError(f"The server sent a roster item with unknown subscription {subscription!r}")
    return Contact(user_jid=user_jid, subscription=sub, is_friend=sub == "both")


def parse_roster_item(item: Element) -> Contact:
    """One ``<item jid subscription ask>`` of a roster result or push."""
    _expect(item, NS_ROSTER, "item", "roster item")
    jid = item.get("jid")
    if not jid:
        raise ServerError("The server sent a roster item without a jid")
    return contact_from_roster(jid, item.get("subscription"), item.get("ask"))


def parse_roster(query: Element) -> list[Contact]:
    """Every contact in a roster result, in the server's order, without items being removed."""
    _expect(query, NS_ROSTER, "query", "roster")
    return [
        parse_roster_item(item)
        for item in query.iterfind(_q(NS_ROSTER, "item"))
        if item.get("subscription") != "remove"
    ]


def build_roster_query() -> Element:
    """``<query xmlns='jabber:iq:roster'/>``: the payload of the IQ get reading the roster."""
    return etree.Element(_q(NS_ROSTER, "query"), nsmap={None: NS_ROSTER})


def build_roster_set(user_jid: str) -> Element:
    """The roster query adding ``user_jid``."""
    query = build_roster_query()
    _sub(query, NS_ROSTER, "item", jid=user_jid)
    return query


def build_roster_remove(user_jid: str) -> Element:
    """The roster query removing ``user_jid`` (which also cancels both subscriptions)."""
    query = build_roster_query()
    _sub(query, NS_ROSTER, "item", jid=user_jid, subscription="remove")
    return query


# -- HTTP file upload (XEP-0363) -------------------------------------------------------------------------------

_ALLOWED_HEADERS: Final = {"authorization": "Authorization", "cookie": "Cookie", "expires": "Expires"}


@dataclass(frozen=True, slots=True)
class UploadSlot:
    """Where to PUT a file (with ``headers``), and the URL it is then served at."""

    put_url: str
    get_url: str
    headers: dict[str, str]


def build_upload_request(filename: str, size: int, content_type: str) -> Element:
    """``<request xmlns='urn:xmpp:http:upload:0' filename size content-type/>``, the payload of an IQ get."""
    attrs = {"filename": _text(filename, "The file name"), "size": str(size), "content-type": content_type}
    return etree.Element(_q(NS_UPLOAD, "request"), attrs, nsmap={None: NS_UPLOAD})


def parse_upload_slot(slot: Element) -> UploadSlot:
    """The PUT and GET URLs of a slot; only the headers XEP-0363 allows are kept (newlines stripped)."""
    _expect(slot, NS_UPLOAD, "slot", "upload slot")
    put, get = slot.find(_q(NS_UPLOAD, "put")), slot.find(_q(NS_UPLOAD, "get"))
    put_url, get_url = (None if e is None else e.get("url") for e in (put, get))
    if not put_url or not get_url or not all(u.startswith(("https://", "http://")) for u in (put_url, get_url)):
        raise ServerError("The server sent an upload slot without http(s) put and get URLs")
    headers: dict[str, str] = {}
    for header in put.iterfind(_q(NS_UPLOAD, "header")):
        name = _ALLOWED_HEADERS.get((header.get("name") or "").lower())
        if name is not None:
            headers[name] = (header.text or "").replace("\r", "").replace("\n", "")
    return UploadSlot(put_url=put_url, get_url=get_url, headers=headers)


# -- service discovery (XEP-0030) and entity capabilities (XEP-0115) ------------------------------------------


def build_disco_info_query(node: str | None = None) -> Element:
    """``<query xmlns='http://jabber.org/protocol/disco#info' [node]/>``."""
    attrs = {} if node is None else {"node": node}
    return etree.Element(_q(NS_DISCO_INFO, "query"), attrs, nsmap={None: NS_DISCO_INFO})


def build_disco_items_query() -> Element:
    """``<query xmlns='http://jabber.org/protocol/disco#items'/>``."""
    return etree.Element(_q(NS_DISCO_ITEMS, "query"), nsmap={None: NS_DISCO_ITEMS})


def build_disco_info_result(
    features: Iterable[str] = CLIENT_FEATURES, *, name: str = "Rostra", node: str | None = None
) -> Element:
    """Our disco#info answer: one ``client/pc`` identity and ``features`` (sorted, as entity caps hashes them)."""
    query = build_disco_info_query(node)
    _sub(query, NS_DISCO_INFO, "identity", category="client", type="pc", name=name)
    for feature in sorted(set(features)):
        _sub(query, NS_DISCO_INFO, "feature", var=feature)
    return query


def entity_caps_ver(features: Iterable[str] = CLIENT_FEATURES, *, name: str = "Rostra") -> str:
    """The XEP-0115 ``ver`` (SHA-1) of the identity and features that ``build_disco_info_result`` announces."""
    text = f"client/pc//{name}<" + "".join(f"{f}<" for f in sorted(set(features)))
    return b64encode(hashlib.sha1(text.encode(), usedforsecurity=False).digest()).decode()


def parse_disco_features(query: Element) -> frozenset[str]:
    """The feature vars of a disco#info result."""
    _expect(query, NS_DISCO_INFO, "query", "disco#info result")
    return frozenset(f.get("var") for f in query.iterfind(_q(NS_DISCO_INFO, "feature")) if f.get("var"))


def parse_disco_items(query: Element) -> list[str]:
    """The item JIDs of a disco#items result, in order."""
    _expect(query, NS_DISCO_ITEMS, "query", "disco#items result")
    return [i.get("jid") for i in query.iterfind(_q(NS_DISCO_ITEMS, "item")) if i.get("jid")]


# -- errors ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StanzaError:
    """The parts of an ``<error>`` that decide what Rostra raises."""

    type: str
    condition: str
    text: str | None = None
    app_condition: str | None = None


def parse_stanza_error(error: Element) -> StanzaError:
    """The type, defined condition, text and application condition of a stanza's ``<error>`` child."""
    if not isinstance(getattr(error, "tag", None), str) or etree.QName(error).localname != "error":
        raise ServerError("The server sent a malformed error")
    condition, text, app = "undefined-condition", None, None
    for child in error:
        if not isinstance(child.tag, str):
            continue
        qname = etree.QName(child)
        if qname.namespace == NS_STANZAS:
            if qname.localname == "text":
                text = child.text or None
            else:
                condition = qname.localname
        else:
            app = qname.localname
    return StanzaError(type=error.get("type") or "cancel", condition=condition, text=text, app_condition=app)


def error_from_stanza_error(error: Element, *, operation: str) -> RostraError:
    """The RostraError for a stanza ``<error>`` answering ``operation``."""
    parsed = parse_stanza_error(error)
    condition = parsed.condition
    if parsed.app_condition == "file-too-large":
        condition = "file-too-large"
    return error_from_condition(condition, operation=operation, text=parsed.text)


_ADVICE: Final[dict[type[RostraError], str]] = {
    ConflictError: "it exists already: pick another name, or use the credentials you stored",
    InvalidInputError: "the server refused the input: check it against the documented rules",
    AuthenticationError: "check the username and password that register() returned",
    ForbiddenError: "not allowed: this needs a mutual contact (add_contact on both sides) or other rights",
    NotFoundError: "no such user or server: check the JID",
    RequestTimeoutError: "the server did not answer in time: retry later",
    RateLimitedError: "the server throttled the request: wait and retry",
    PayloadTooLargeError: "too large for the server: shrink the payload",
    ServerError: "the server failed: retry, or report it to the server's operator",
    UnreachableError: "the server does not offer this service: check the server's configuration",
}

_BY_CONDITION: Final[dict[str, type[RostraError]]] = {
    "conflict": ConflictError,
    "not-acceptable": InvalidInputError,
    "jid-malformed": InvalidInputError,
    "bad-request": InvalidInputError,
    "not-authorized": AuthenticationError,
    "forbidden": ForbiddenError,
    "subscription-required": ForbiddenError,
    "item-not-found": NotFoundError,
    "remote-server-not-found": NotFoundError,
    "recipient-unavailable": NotFoundError,
    "remote-server-timeout": RequestTimeoutError,
    "policy-violation": RateLimitedError,
    "resource-constraint": RateLimitedError,
    "payload-too-big": PayloadTooLargeError,
    "file-too-large": PayloadTooLargeError,
}

# service-unavailable means different things depending on what was asked.
_SERVICE_UNAVAILABLE: Final[dict[str, type[RostraError]]] = {
    "last_seen": ForbiddenError,  # servers answer it for users who hide their activity from us
    "get_profile": NotFoundError,
    "register": ForbiddenError,  # in-band registration switched off
}

#: A profile read answered with one of these means "no readable profile": Prosody answers forbidden for a node
#: that does not exist yet when the asker is not a contact (and servers do not tell whether the user exists).
NO_PROFILE_CONDITIONS: Final = frozenset({"item-not-found", "forbidden"})
#: A read of the whole profile (PROFILE_NODE, access model ``presence``) refused: the reader is not (or no longer)
#: a contact, and reads the public copy instead. Prosody answers forbidden; ejabberd not-authorized with
#: ``<presence-subscription-required/>``.
FULL_PROFILE_REFUSED: Final = frozenset({"forbidden", "not-authorized"})
#: What a server without server-to-server answers for another domain (Prosody: not-allowed; ejabberd with
#: ``s2s_access: none``: forbidden): not found from here. Checked before NO_PROFILE_CONDITIONS for such a JID.
REMOTE_REFUSED_CONDITIONS: Final = frozenset(
    {"not-allowed", "remote-server-not-found", "service-unavailable", "forbidden"}
)


def error_from_condition(condition: str, *, operation: str, text: str | None) -> RostraError:
    """The RostraError for an XMPP error ``condition`` answering ``operation`` (e.g. "register", "upload").

    ``text`` (the server's explanation) is appended to the message. Unknown conditions give ``ServerError``.
    """
    cls: type[RostraError]
    if condition == "not-acceptable" and operation == "upload":
        cls = PayloadTooLargeError
    elif condition == "service-unavailable":
        cls = _SERVICE_UNAVAILABLE.get(operation, UnreachableError)
    else:
        cls = _BY_CONDITION.get(condition, ServerError)
    message = f"{operation.replace('_', ' ')} failed ({condition}): {_ADVICE[cls]}"
    if text:
        message += f". The server said: {text}"
    return cls(message)
