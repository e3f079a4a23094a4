"""Property: whatever the server sends, the sans-IO layer gives a valid event or StreamProtocolError, never more."""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

import rostra
from rostra_ws._errors import StreamProtocolError
from rostra_ws._sasl import SaslNegotiation
from rostra_ws._stream import State, StreamEvent, XmppWebSocketStream
from rostra_xmpp_common.namespaces import NS_SASL

CAP = 4096
VALID = [
    "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='s1' from='example.org' version='1.0' xml:lang='en'/>",
    "<stream:features xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
    "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism></mechanisms>"
    "<register xmlns='http://jabber.org/features/iq-register'/></stream:features>",
    "<iq xmlns='jabber:client' type='result' id='x-1' from='example.org'><query xmlns='jabber:iq:roster'>"
    "<item jid='bob@example.org' subscription='both'/></query></iq>",
    "<message xmlns='jabber:client' from='bob@example.org/r'><body>h&amp;i</body></message>",
    "<presence xmlns='jabber:client' from='bob@example.org/r' type='unavailable'/>",
    "<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>cj1hYmMscz1jMkZzZEE9PSxpPTQwOTY=</challenge>",
    "<stream:error xmlns:stream='http://etherx.jabber.org/streams'>"
    "<conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
    "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>",
]
HOSTILE = [
    "<!DOCTYPE l [<!ENTITY a 'ha'><!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'><!ENTITY c '&b;&b;&b;&b;&b;&b;&b;&b;'>"
    "<!ENTITY d '&c;&c;&c;&c;&c;&c;&c;&c;'>]><message xmlns='jabber:client'><body>&d;</body></message>",
    "<!DOCTYPE m SYSTEM 'http://127.0.0.1:1/evil.dtd'><message xmlns='jabber:client'/>",
    "<!DOCTYPE m [<!ENTITY x SYSTEM 'file:///etc/hostname'>]><message xmlns='jabber:client'>&x;</message>",
    "<message xmlns='jabber:client'>" + "<a>" * 2000 + "</a>" * 2000 + "</message>",
    "<message xmlns='jabber:client'><body>" + "x" * (CAP + 1) + "</body></message>",
    "<?xml version='1.0' encoding='latin-1'?><message xmlns='jabber:client'/>",
]
NAMESPACES = [
    "jabber:client",
    "jabber:server",
    "urn:ietf:params:xml:ns:xmpp-framing",
    "http://etherx.jabber.org/streams",
    NS_SASL,
    "",
]
NAMES = ["open", "close", "features", "error", "iq", "message", "presence", "challenge", "success", "failure", "x"]


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """A valid message truncated, with a slice deleted or with random text spliced in."""
    base = draw(st.sampled_from(VALID))
    kind = draw(st.sampled_from(["truncate", "delete", "insert", "double"]))
    if kind == "double":
        return base + draw(st.sampled_from(VALID))
    cut = draw(st.integers(0, len(base)))
    if kind == "truncate":
        return base[:cut]
    if kind == "delete":
        return base[:cut] + base[cut + draw(st.integers(1, 8)) :]
    return base[:cut] + draw(st.text(st.sampled_from("<>/&;='\" !?[]-xmlns:"), max_size=8)) + base[cut:]


@st.composite
def renamespaced(draw: st.DrawFn) -> str:
    """An element of a drawn name in a drawn namespace: right, wrong or none."""
    name, ns = draw(st.sampled_from(NAMES)), draw(st.sampled_from(NAMESPACES))
    xmlns = f" xmlns='{ns}'" if ns else ""
    body = draw(st.text(max_size=20)).replace("&", "&amp;").replace("<", "&lt;")
    return f"<{name}{xmlns} id='i' version='1.0'>{body}</{name}>"


SERVER_MESSAGES = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200),
    st.sampled_from(VALID),
    st.sampled_from(HOSTILE),
    mutated(),
    renamespaced(),
    st.text(max_size=200).map(lambda t: "<message xmlns='jabber:client'>" + t + "</message>"),
)


def feed(stream: XmppWebSocketStream, message: str | bytes) -> StreamEvent | None:
    try:
        return stream.receive(message)
    except StreamProtocolError:
        assert stream.state is State.CLOSED
        return None


def stream_in(state: str) -> XmppWebSocketStream:
    stream = XmppWebSocketStream("example.org", max_message_bytes=CAP)
    if state != "idle":
        stream.open()
    if state in ("open", "closing"):
        stream.receive(VALID[0])
    if state == "closing":
        stream.close()
    return stream


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["idle", "opening", "open", "closing"]), st.lists(SERVER_MESSAGES, min_size=1, max_size=4))
def test_stream_receive_gives_an_event_or_the_protocol_error(state: str, messages: list[str | bytes]) -> None:
    stream = stream_in(state)
    for message in messages:
        feed(stream, message)


def sasl_element(name: str, text: str) -> Any:
    element = etree.Element(f"{{{NS_SASL}}}{name}")
    element.text = text
    return element


XML_CHARS = st.characters(min_codepoint=0x20, max_codepoint=0xD7FF)
B64_PAYLOADS = st.one_of(
    st.text(XML_CHARS, max_size=60),
    st.binary(max_size=60).map(lambda b: base64.b64encode(b).decode()),
    st.text(st.sampled_from("rsiv=,abcAB0123+/"), max_size=60).map(lambda t: base64.b64encode(t.encode()).decode()),
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]),
    st.lists(
        st.tuples(st.sampled_from(["challenge", "success", "failure", "abort", "auth"]), B64_PAYLOADS), max_size=4
    ),
)
def test_sasl_receive_gives_a_step_or_a_documented_error(mechanism: str, steps: list[tuple[str, str]]) -> None:
    negotiation = SaslNegotiation("alice", "secret", [mechanism], plain_allowed=True)
    negotiation.start()
    error: rostra.RostraError | None = None
    for name, text in steps:
        try:
            answer = negotiation.receive(sasl_element(name, text))
        except (StreamProtocolError, rostra.AuthenticationError) as exc:
            error = exc
            break
        assert answer is None or etree.QName(answer).localname == "response"
    assert error is None or "secret" not in str(error)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["SCRAM-SHA-256", "SCRAM-SHA-1"]),
    st.text(st.sampled_from("abcXYZ09+/=,"), max_size=12),
    st.text(st.sampled_from("abcXYZ09+/=,"), max_size=16),
    st.one_of(st.integers(-5, 5000).map(str), st.text(st.sampled_from("0123456789x-"), max_size=12)),
    st.binary(max_size=40),
)
def test_scram_server_first_with_our_nonce_gives_a_response_or_the_protocol_error(
    mechanism: str, nonce_tail: str, salt: str, iterations: str, final: bytes
) -> None:
    negotiation = SaslNegotiation("alice", "secret", [mechanism], plain_allowed=False)
    nonce = base64.b64decode(negotiation.start().text).decode().split("r=")[1]
    first = f"r={nonce}{nonce_tail},s={salt},i={iterations}".encode()
    error: rostra.RostraError | None = None
    try:
        negotiation.receive(sasl_element("challenge", base64.b64encode(first).decode()))
        negotiation.receive(sasl_element("success", base64.b64encode(b"v=" + final).decode()))
    except StreamProtocolError as exc:
        error = exc
    assert error is not None  # a random signature never verifies
    assert negotiation.done is False
