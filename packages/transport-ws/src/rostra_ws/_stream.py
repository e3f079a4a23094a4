"""The XMPP stream over WebSocket (RFC 7395), sans-IO: one WebSocket message in, one event out.

Rules:
- No I/O, no clocks, no tasks: the driver (``_session``) moves text between this object and the WebSocket.
- One server message is exactly one complete element. Anything else (over the size cap, not well-formed,
  two elements, a DTD, an entity, a comment or processing instruction, the wrong namespace, the wrong
  moment) raises ``StreamProtocolError`` and moves the stream to ``closed``; nothing else ever comes out.
- The size cap is checked BEFORE parsing; lxml parses with entities, DTDs and the network off.
- Every transition is in ``_RECEIVE`` below: (state, event type) -> next state. A pair missing there is a
  protocol error. Local misuse (``send`` when not open, ``open`` at the wrong time) raises ``ValueError`` and
  changes nothing.
- Outgoing stanzas (iq, message, presence) always carry ``xmlns='jabber:client'``; no XML declaration, no
  leading whitespace (Prosody closes with 1007 on a leading space).

States: ``idle`` (nothing sent) -> ``opening`` (our ``<open/>`` sent, waiting for the server's) -> ``open``
-> ``closing`` (our ``<close/>`` sent, or the server's ``<stream:error>`` received: waiting for the server's
``<close/>``) -> ``closed``. After SASL success the driver calls ``open()`` again: ``open`` -> ``opening``.
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass
from typing import Any, Final

from lxml import etree

from rostra_xmpp_common.namespaces import (
    NS_BIND,
    NS_CLIENT,
    NS_FRAMING,
    NS_REGISTER_FEATURE,
    NS_SASL,
    NS_STREAM_ERRORS,
    NS_STREAMS,
)

from ._errors import StreamProtocolError

__all__ = [
    "FeaturesReceived",
    "NonzaReceived",
    "StanzaReceived",
    "State",
    "StreamClosed",
    "StreamErrorReceived",
    "StreamEvent",
    "StreamOpened",
    "XmppWebSocketStream",
]

Element = Any  # lxml.etree._Element (lxml ships no type information)

_STANZA_NAMES: Final = frozenset({"iq", "message", "presence"})
# Names that only mean something in their own namespace: seen elsewhere they are a namespace mistake.
_RESERVED_NAMES: Final = _STANZA_NAMES | {"open", "close"}


class State(enum.StrEnum):
    """Where the stream is (see the module docstring)."""

    IDLE = "idle"
    OPENING = "opening"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(frozen=True)
class StreamOpened:
    """The server's ``<open/>``: the stream (re)started."""

    stream_id: str
    from_: str
    version: str


@dataclass(frozen=True)
class FeaturesReceived:
    """``<stream:features>``, with what the session needs already read out of it."""

    features: Element
    mechanisms: tuple[str, ...]
    can_register: bool
    can_bind: bool


@dataclass(frozen=True)
class StanzaReceived:
    """An ``iq``, ``message`` or ``presence`` in ``jabber:client``."""

    element: Element


@dataclass(frozen=True)
class NonzaReceived:
    """Any other first-level element (SASL challenge/success/failure, ...)."""

    element: Element


@dataclass(frozen=True)
class StreamClosed:
    """The server's ``<close/>`` (the driver answers it with ``close()`` and ends the WebSocket)."""

    reason: str | None


@dataclass(frozen=True)
class StreamErrorReceived:
    """``<stream:error>``: the server ends the stream (e.g. ``conflict`` when the resource logged in elsewhere)."""

    condition: str
    text: str | None


StreamEvent = StreamOpened | FeaturesReceived | StanzaReceived | NonzaReceived | StreamClosed | StreamErrorReceived

# The whole receive side of the state machine: (state, event type) -> next state.
_RECEIVE: Final[dict[tuple[State, type[Any]], State]] = {
    (State.OPENING, StreamOpened): State.OPEN,
    (State.OPENING, StreamClosed): State.CLOSED,
    (State.OPENING, StreamErrorReceived): State.CLOSING,
    (State.OPEN, FeaturesReceived): State.OPEN,
    (State.OPEN, StanzaReceived): State.OPEN,
    (State.OPEN, NonzaReceived): State.OPEN,
    (State.OPEN, StreamClosed): State.CLOSED,
    (State.OPEN, StreamErrorReceived): State.CLOSING,
    # Our <close/> crosses stanzas already in flight: they still arrive until the server's <close/>.
    (State.CLOSING, StanzaReceived): State.CLOSING,
    (State.CLOSING, NonzaReceived): State.CLOSING,
    (State.CLOSING, StreamErrorReceived): State.CLOSING,
    (State.CLOSING, StreamClosed): State.CLOSED,
}

_PARSER: Final = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    dtd_validation=False,
    load_dtd=False,
    huge_tree=False,
    remove_comments=False,  # kept so that they can be refused, not silently dropped
    remove_pis=False,
)


def _qname(ns: str, tag: str) -> str:
    return f"{{{ns}}}{tag}"


class XmppWebSocketStream:
    """One XMPP stream framed per RFC 7395. Methods return the text to send; ``receive`` returns events."""

    def __init__(self, domain: str, *, max_message_bytes: int = 1_048_576) -> None:
        if max_message_bytes < 1:
            raise ValueError("max_message_bytes must be positive")
        self.domain = domain
        self.max_message_bytes = max_message_bytes
        self.state = State.IDLE
        self._peer_closed = False
        self._id_prefix = secrets.token_hex(4)
        self._id_counter = 0

    def __repr__(self) -> str:
        return f"XmppWebSocketStream(domain={self.domain!r}, state={self.state.value!r})"

    # -- outgoing -----------------------------------------------------------------------------------------

    def open(self) -> str:
        """The ``<open/>`` that (re)starts the stream; state -> ``opening``.

        Raises ``ValueError`` unless the stream is ``idle`` or ``open`` (a restart after SASL success).
        """
        if self.state not in (State.IDLE, State.OPEN):
            raise ValueError(f"cannot open the stream while it is {self.state.value}")
        element = etree.Element(_qname(NS_FRAMING, "open"), nsmap={None: NS_FRAMING})
        element.set("to", self.domain)
        element.set("version", "1.0")
        self.state = State.OPENING
        return str(etree.tostring(element, encoding="unicode"))

    def close(self) -> str:
        """Our ``<close/>``; never raises. State -> ``closing``, or ``closed`` if the server closed already."""
        if self._peer_closed or self.state in (State.IDLE, State.CLOSED):
            self.state = State.CLOSED
        else:
            self.state = State.CLOSING
        return str(
            etree.tostring(etree.Element(_qname(NS_FRAMING, "close"), nsmap={None: NS_FRAMING}), encoding="unicode")
        )

    def send(self, element: Element) -> str:
        """Serialize ONE stanza or nonza; stanzas (and no-namespace elements inside them) get ``jabber:client``.

        Raises ``ValueError`` when the stream is not ``open``, for an element with no namespace that is not a
        stanza, for a stanza name in another namespace, for framing or stream-level elements (use ``open`` /
        ``close``) and for comments or processing instructions in the tree. The element is not modified.
        """
        if self.state is not State.OPEN:
            raise ValueError(f"cannot send while the stream is {self.state.value}")
        if not etree.iselement(element) or not isinstance(element.tag, str):
            raise TypeError("send() takes one lxml element")
        qname = etree.QName(element)
        ns, name = qname.namespace, qname.localname
        if ns is None:
            if name not in _STANZA_NAMES:
                raise ValueError(f"<{name}> has no namespace and is not a stanza")
            ns = NS_CLIENT
        elif ns == NS_CLIENT:
            if name not in _STANZA_NAMES:
                raise ValueError(f"<{name}> is not a stanza of jabber:client")
        elif name in _STANZA_NAMES:
            raise ValueError(f"a <{name}> stanza must be in jabber:client, not {ns}")
        elif ns in (NS_FRAMING, NS_STREAMS):
            raise ValueError(f"<{name}> in {ns} is stream-level: use open() or close()")
        text = _canonical_text(element)
        if text is None:
            text = str(etree.tostring(_rebuild(element, None, None), encoding="unicode"))
        return text

    def new_id(self) -> str:
        """A fresh IQ id, unique within this stream and unpredictable across streams."""
        self._id_counter += 1
        return f"{self._id_prefix}-{self._id_counter}"

    # -- incoming -----------------------------------------------------------------------------------------

    def receive(self, message: str | bytes) -> StreamEvent:
        """Turn ONE WebSocket message from the server into exactly one event.

        Raises ``StreamProtocolError`` (and the state becomes ``closed``) for anything that is not one
        well-formed, namespace-correct element allowed in the current state.
        """
        try:
            event = self._classify(self._parse(message))
            next_state = self._next_state(event)
        except StreamProtocolError:
            self.state = State.CLOSED
            raise
        if isinstance(event, StreamClosed):
            self._peer_closed = True
        self.state = next_state
        return event

    def _next_state(self, event: StreamEvent) -> State:
        next_state = _RECEIVE.get((self.state, type(event)))
        if next_state is None:
            raise StreamProtocolError(f"The server sent {_describe(event)} while the stream was {self.state.value}")
        return next_state

    def _parse(self, message: str | bytes) -> Element:
        if self.state is State.CLOSED:
            raise StreamProtocolError("The server sent a message after the stream closed: the session was closed")
        if isinstance(message, str):
            if len(message) > self.max_message_bytes:
                raise _oversize(self.max_message_bytes)
            try:
                data = message.encode("utf-8")  # text that encodes is valid UTF-8: no decode check needed
            except UnicodeEncodeError:
                raise StreamProtocolError("The server sent text that is not valid Unicode") from None
        elif isinstance(message, bytes | bytearray):
            data = bytes(message)
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                raise StreamProtocolError("The server sent a message that is not UTF-8") from None
        else:
            raise TypeError("receive() takes the text or bytes of one WebSocket message")
        if len(data) > self.max_message_bytes:
            raise _oversize(self.max_message_bytes)
        # XMPP's restricted XML (RFC 6120 11.1): no declaration, DTD, entity declaration, comment or PI. A
        # byte scan refuses them before libxml2 sees them; the tree walk below is the second line.
        if not data.lstrip(b" \t\r\n").startswith(b"<") or b"<?" in data or _has_markup_declaration(data):
            raise StreamProtocolError("The server sent a message that is not one plain XML element")
        try:
            root = etree.fromstring(data, _PARSER)
        except (etree.LxmlError, ValueError):
            raise StreamProtocolError("The server sent a message that is not one well-formed XML element") from None
        docinfo = root.getroottree().docinfo
        if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
            raise StreamProtocolError("The server sent a DTD: refused")
        # Only the non-element nodes are visited (no Python proxy per element).
        for _node in root.iter(etree.Comment, etree.ProcessingInstruction, etree.Entity):
            raise StreamProtocolError("The server sent a comment, entity or processing instruction: refused")
        return root

    def _classify(self, element: Element) -> StreamEvent:
        qname = etree.QName(element)
        ns, name = qname.namespace, qname.localname
        if ns == NS_FRAMING:
            if name == "open":
                return _opened(element)
            if name == "close":
                return StreamClosed(reason=element.get("see-other-uri"))
        elif ns == NS_STREAMS:
            if name == "features":
                return _features(element)
            if name == "error":
                return _stream_error(element)
        elif ns == NS_CLIENT:
            if name in _STANZA_NAMES:
                return StanzaReceived(element)
        elif ns is not None and name not in _RESERVED_NAMES:
            return NonzaReceived(element)
        where = "no namespace" if ns is None else f"namespace {ns}"
        raise StreamProtocolError(f"The server sent <{name}> in {where}, which XMPP over WebSocket does not allow")


def _has_markup_declaration(data: bytes) -> bool:
    """True if ``data`` holds ``<!`` once its CDATA openings (``<![CDATA[``) are taken out."""
    return b"<!" in data and data.replace(b"<![CDATA[", b"").find(b"<!") != -1


def _oversize(limit: int) -> StreamProtocolError:
    return StreamProtocolError(f"The server sent a message over the {limit}-byte limit: the session was closed")


def _describe(event: StreamEvent) -> str:
    names: dict[type[Any], str] = {
        StreamOpened: "<open/>",
        FeaturesReceived: "<stream:features>",
        StanzaReceived: "a stanza",
        NonzaReceived: "a top-level element",
        StreamClosed: "<close/>",
        StreamErrorReceived: "<stream:error>",
    }
    return names[type(event)]


def _opened(element: Element) -> StreamOpened:
    version = element.get("version")
    stream_id = element.get("id")
    if version is None or version.split(".")[0] != "1":
        raise StreamProtocolError("The server opened the stream without version 1.x")
    if not stream_id:
        raise StreamProtocolError("The server opened the stream without an id")
    if len(element):
        raise StreamProtocolError("The server's <open/> has children")
    return StreamOpened(stream_id=stream_id, from_=element.get("from") or "", version=version)


def _features(element: Element) -> FeaturesReceived:
    mechanisms = tuple(
        text.strip()
        for text in element.xpath("s:mechanisms/s:mechanism/text()", namespaces={"s": NS_SASL})
        if text.strip()
    )
    return FeaturesReceived(
        features=element,
        mechanisms=mechanisms,
        can_register=element.find(_qname(NS_REGISTER_FEATURE, "register")) is not None,
        can_bind=element.find(_qname(NS_BIND, "bind")) is not None,
    )


def _stream_error(element: Element) -> StreamErrorReceived:
    condition = "undefined-condition"
    text: str | None = None
    for child in element:
        qname = etree.QName(child)
        if qname.namespace != NS_STREAM_ERRORS:
            continue
        if qname.localname == "text":
            text = child.text
        elif condition == "undefined-condition":
            condition = qname.localname
    return StreamErrorReceived(condition=condition, text=text)


def _canonical_text(root: Element) -> str | None:
    """The text of ``root`` when serializing it as is gives exactly what ``_rebuild`` would; else None.

    The fast path of ``send`` (the session builds its stanzas in that form already). It holds when the root has no
    parent, every element is namespaced with that namespace as the only one in scope (``nsmap == {None: ns}``), no
    attribute is namespaced, and the tree has no comment, PI or entity (checked by ``_declarations``); and the text
    has no CDATA section and exactly one ``xmlns=`` per namespace change (a redundant declaration, or ``xmlns=``
    inside a text or value, sends it down the slow path).
    """
    if root.getparent() is not None:
        return None
    declarations = _declarations(root, None)
    if declarations is None:
        return None
    text = str(etree.tostring(root, encoding="unicode", with_tail=False))
    if text.count("xmlns=") != declarations or "<![CDATA[" in text:
        return None
    return text


def _declarations(element: Element, parent_ns: str | None) -> int | None:
    """How many default-namespace declarations ``_rebuild`` writes for this subtree; None if not canonical."""
    tag = element.tag
    if not isinstance(tag, str) or not tag.startswith("{"):
        return None
    ns = tag[1 : tag.index("}")]
    if element.nsmap != {None: ns}:
        return None
    for key in element.attrib:
        if key.startswith("{"):
            return None
    count = 1 if ns != parent_ns else 0
    for child in element:
        below = _declarations(child, ns)
        if below is None:
            return None
        count += below
    return count


def _rebuild(source: Element, parent: Element | None, parent_ns: str | None) -> Element:
    """A copy of ``source`` where each namespace change is a default ``xmlns`` and no-namespace means client."""
    if not isinstance(source.tag, str):
        raise TypeError("stanzas carry no comments, entities or processing instructions")
    qname = etree.QName(source)
    ns = qname.namespace or NS_CLIENT
    tag = _qname(ns, qname.localname)
    nsmap = {None: ns} if ns != parent_ns else None
    copy = etree.Element(tag, nsmap=nsmap) if parent is None else etree.SubElement(parent, tag, nsmap=nsmap)
    for key, value in source.attrib.items():
        copy.set(key, value)
    copy.text = source.text
    copy.tail = source.tail if parent is not None else None
    for child in source:
        _rebuild(child, copy, ns)
    return copy
