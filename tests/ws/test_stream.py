"""The sans-IO XMPP-over-WebSocket stream: exact output text, every receive() case, every refusal."""

from __future__ import annotations

from typing import Any

import pytest
from lxml import etree

import rostra
from rostra_ws._errors import StreamProtocolError
from rostra_ws._stream import (
    FeaturesReceived,
    NonzaReceived,
    StanzaReceived,
    State,
    StreamClosed,
    StreamErrorReceived,
    StreamOpened,
    XmppWebSocketStream,
)

OPEN = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='s1' from='example.org' version='1.0' xml:lang='en'/>"
CLOSE = "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"
FEATURES = (
    "<stream:features xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
    "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism>"
    "<mechanism>PLAIN</mechanism></mechanisms><register xmlns='http://jabber.org/features/iq-register'/>"
    "</stream:features>"
)
BIND_FEATURES = (
    "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>"
    "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"
)
MESSAGE = "<message xmlns='jabber:client' from='bob@example.org/x' type='chat'><body>hi</body></message>"
SUCCESS = "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"


def opened() -> XmppWebSocketStream:
    stream = XmppWebSocketStream("example.org")
    stream.open()
    stream.receive(OPEN)
    return stream


def refused(stream: XmppWebSocketStream, message: str | bytes) -> StreamProtocolError:
    with pytest.raises(StreamProtocolError) as caught:
        stream.receive(message)
    return caught.value


# -- outgoing ---------------------------------------------------------------------------------------------


def test_open_text_names_the_domain_in_the_framing_namespace() -> None:
    stream = XmppWebSocketStream("example.org")
    assert stream.open() == '<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="example.org" version="1.0"/>'


def test_open_moves_idle_to_opening() -> None:
    stream = XmppWebSocketStream("example.org")
    stream.open()
    assert stream.state == "opening"


def test_open_escapes_the_domain() -> None:
    stream = XmppWebSocketStream('a"&b')
    assert stream.open() == '<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="a&quot;&amp;b" version="1.0"/>'


def test_open_again_after_the_stream_is_open_restarts_it() -> None:
    stream = opened()
    stream.open()
    assert stream.state is State.OPENING


def test_open_while_opening_is_refused_and_changes_nothing() -> None:
    stream = XmppWebSocketStream("example.org")
    stream.open()
    with pytest.raises(ValueError, match="opening"):
        stream.open()
    assert stream.state is State.OPENING


def test_close_text_is_the_framing_close() -> None:
    assert opened().close() == '<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"/>'


def test_close_of_an_open_stream_moves_to_closing() -> None:
    stream = opened()
    stream.close()
    assert stream.state is State.CLOSING


def test_close_answering_the_servers_close_moves_to_closed() -> None:
    stream = opened()
    stream.receive(CLOSE)
    assert stream.close() == '<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"/>'
    assert stream.state is State.CLOSED


def test_send_adds_jabber_client_to_a_stanza_without_namespace() -> None:
    stream = opened()
    iq = etree.Element("iq", type="get", id="a1")
    etree.SubElement(iq, "{jabber:iq:roster}query")
    assert stream.send(iq) == '<iq xmlns="jabber:client" type="get" id="a1"><query xmlns="jabber:iq:roster"/></iq>'


def test_send_puts_no_namespace_children_of_a_stanza_in_jabber_client() -> None:
    stream = opened()
    message = etree.Element("message", to="bob@example.org")
    etree.SubElement(message, "body").text = "a<b"
    sent = stream.send(message)
    assert sent == '<message xmlns="jabber:client" to="bob@example.org"><body>a&lt;b</body></message>'
    assert etree.fromstring(sent)[0].tag == "{jabber:client}body"


def test_send_declares_jabber_client_as_the_default_namespace_of_a_namespaced_stanza() -> None:
    stream = opened()
    presence = etree.Element("{jabber:client}presence")
    assert stream.send(presence) == '<presence xmlns="jabber:client"/>'


def test_send_keeps_a_payload_namespace_declared_on_its_element() -> None:
    stream = opened()
    iq = etree.Element("{jabber:client}iq", nsmap={None: "jabber:client"}, type="set", id="b2")
    query = etree.SubElement(iq, "{jabber:iq:private}query", nsmap={None: "jabber:iq:private"})
    etree.SubElement(query, "{urn:rostra:metadata:0}rostra")
    assert stream.send(iq) == (
        '<iq xmlns="jabber:client" type="set" id="b2"><query xmlns="jabber:iq:private">'
        '<rostra xmlns="urn:rostra:metadata:0"/></query></iq>'
    )


def test_send_serializes_a_sasl_nonza_in_its_own_namespace() -> None:
    stream = opened()
    auth = etree.Element("{urn:ietf:params:xml:ns:xmpp-sasl}auth", mechanism="PLAIN")
    auth.text = "AGEAYg=="
    assert stream.send(auth) == '<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">AGEAYg==</auth>'


def test_send_does_not_modify_the_callers_element() -> None:
    stream = opened()
    iq = etree.Element("iq", id="c3")
    stream.send(iq)
    assert etree.tostring(iq) == b'<iq id="c3"/>'


def test_send_output_has_no_declaration_and_no_leading_whitespace() -> None:
    stream = opened()
    assert stream.send(etree.Element("presence")).startswith("<presence ")


def test_send_refuses_a_stanza_in_another_namespace() -> None:
    stream = opened()
    with pytest.raises(ValueError, match="must be in jabber:client"):
        stream.send(etree.Element("{jabber:server}message"))


def test_send_refuses_a_non_stanza_without_namespace() -> None:
    stream = opened()
    with pytest.raises(ValueError, match="not a stanza"):
        stream.send(etree.Element("auth"))


def test_send_refuses_a_non_stanza_in_jabber_client() -> None:
    stream = opened()
    with pytest.raises(ValueError, match="not a stanza"):
        stream.send(etree.Element("{jabber:client}body"))


def test_send_refuses_framing_elements() -> None:
    stream = opened()
    with pytest.raises(ValueError, match="use open"):
        stream.send(etree.Element("{urn:ietf:params:xml:ns:xmpp-framing}close"))


def test_send_refuses_a_comment_inside_a_stanza() -> None:
    stream = opened()
    iq = etree.Element("iq")
    iq.append(etree.Comment("no"))
    with pytest.raises(TypeError, match="comments"):
        stream.send(iq)


@pytest.mark.parametrize("state", ["idle", "opening", "closing", "closed"])
def test_send_is_refused_unless_open(state: str) -> None:
    stream = XmppWebSocketStream("example.org")
    if state != "idle":
        stream.open()
    if state in ("closing", "closed"):
        stream.receive(OPEN)
        stream.close()
    if state == "closed":
        stream.receive(CLOSE)
    assert stream.state == state
    with pytest.raises(ValueError, match=state):
        stream.send(etree.Element("presence"))


def test_new_id_counts_under_one_prefix() -> None:
    stream = XmppWebSocketStream("example.org")
    first, second = stream.new_id(), stream.new_id()
    prefix = first.split("-")[0]
    assert (first, second) == (f"{prefix}-1", f"{prefix}-2")


def test_new_id_prefix_differs_between_streams() -> None:
    prefixes = {XmppWebSocketStream("example.org").new_id().split("-")[0] for _ in range(20)}
    assert len(prefixes) == 20


def test_repr_names_domain_and_state() -> None:
    assert repr(XmppWebSocketStream("example.org")) == "XmppWebSocketStream(domain='example.org', state='idle')"


# -- incoming: the valid events ----------------------------------------------------------------------------


def test_receive_open_gives_stream_opened_and_opens() -> None:
    stream = XmppWebSocketStream("example.org")
    stream.open()
    assert stream.receive(OPEN) == StreamOpened(stream_id="s1", from_="example.org", version="1.0")
    assert stream.state is State.OPEN


def test_receive_open_as_bytes() -> None:
    stream = XmppWebSocketStream("example.org")
    stream.open()
    assert stream.receive(OPEN.encode()) == StreamOpened(stream_id="s1", from_="example.org", version="1.0")


def test_receive_features_reads_mechanisms_and_registration() -> None:
    event = opened().receive(FEATURES)
    assert isinstance(event, FeaturesReceived)
    assert (event.mechanisms, event.can_register, event.can_bind) == (("SCRAM-SHA-1", "PLAIN"), True, False)
    assert event.features.tag == "{http://etherx.jabber.org/streams}features"


def test_receive_features_after_sasl_reads_bind() -> None:
    event = opened().receive(BIND_FEATURES)
    assert isinstance(event, FeaturesReceived)
    assert (event.mechanisms, event.can_register, event.can_bind) == ((), False, True)


def test_receive_stanza_gives_the_element() -> None:
    event = opened().receive(MESSAGE)
    assert isinstance(event, StanzaReceived)
    assert (event.element.tag, event.element.get("from")) == ("{jabber:client}message", "bob@example.org/x")


def test_receive_sasl_element_is_a_nonza() -> None:
    event = opened().receive(SUCCESS)
    assert isinstance(event, NonzaReceived)
    assert event.element.tag == "{urn:ietf:params:xml:ns:xmpp-sasl}success"


def test_receive_close_gives_stream_closed_and_closes() -> None:
    stream = opened()
    assert stream.receive(CLOSE) == StreamClosed(reason=None)
    assert stream.state is State.CLOSED


def test_receive_close_with_see_other_uri_reports_it() -> None:
    stream = opened()
    event = stream.receive("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing' see-other-uri='wss://b/x'/>")
    assert event == StreamClosed(reason="wss://b/x")


def test_receive_close_after_ours_completes_the_close() -> None:
    stream = opened()
    stream.close()
    stream.receive(CLOSE)
    assert stream.state is State.CLOSED


def test_receive_stanza_in_flight_after_our_close_is_delivered() -> None:
    stream = opened()
    stream.close()
    assert isinstance(stream.receive(MESSAGE), StanzaReceived)


def test_receive_stream_error_gives_condition_and_text() -> None:
    stream = opened()
    event = stream.receive(
        "<stream:error xmlns:stream='http://etherx.jabber.org/streams'>"
        "<conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
        "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>Replaced by new connection</text></stream:error>"
    )
    assert event == StreamErrorReceived(condition="conflict", text="Replaced by new connection")
    assert stream.state is State.CLOSING


def test_receive_stream_error_without_condition_is_undefined() -> None:
    event = opened().receive("<stream:error xmlns:stream='http://etherx.jabber.org/streams'/>")
    assert event == StreamErrorReceived(condition="undefined-condition", text=None)


def test_receive_close_after_a_stream_error_is_accepted() -> None:
    stream = opened()
    stream.receive("<error xmlns='http://etherx.jabber.org/streams'/>")
    assert stream.receive(CLOSE) == StreamClosed(reason=None)


def test_receive_open_again_after_restart() -> None:
    stream = opened()
    stream.open()
    assert stream.receive(OPEN.replace("s1", "s2")) == StreamOpened(stream_id="s2", from_="example.org", version="1.0")


def test_receive_accepts_cdata() -> None:
    event = opened().receive("<message xmlns='jabber:client'><body><![CDATA[a<b]]></body></message>")
    assert isinstance(event, StanzaReceived)
    assert event.element[0].text == "a<b"


# -- incoming: refusals ------------------------------------------------------------------------------------

BAD_MESSAGES: dict[str, Any] = {
    "not_xml": "hello",
    "empty": "",
    "truncated": MESSAGE[:-3],
    "two_elements": MESSAGE + MESSAGE,
    "undeclared_prefix": "<stream:features/>",
    "xml_declaration": "<?xml version='1.0'?>" + MESSAGE,
    "processing_instruction": "<message xmlns='jabber:client'><?pi x?></message>",
    "comment": "<message xmlns='jabber:client'><!-- c --></message>",
    "doctype": "<!DOCTYPE message>" + MESSAGE,
    "entity_declaration": "<!DOCTYPE m [<!ENTITY x 'y'>]><message xmlns='jabber:client'>&x;</message>",
    "billion_laughs": (
        "<!DOCTYPE l [<!ENTITY a 'ha'><!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;'><!ENTITY c '&b;&b;&b;&b;&b;&b;&b;'>]>"
        "<message xmlns='jabber:client'><body>&c;</body></message>"
    ),
    "undefined_entity": "<message xmlns='jabber:client'><body>&nbsp;</body></message>",
    "external_entity": (
        "<!DOCTYPE m [<!ENTITY x SYSTEM 'file:///etc/passwd'>]><message xmlns='jabber:client'>&x;</message>"
    ),
    "not_utf8": b"<message xmlns='jabber:client'><body>\xff\xfe</body></message>",
    "nul_byte": "<message xmlns='jabber:client'>\x00</message>",
    "lone_surrogate": "<message xmlns='jabber:client'><body>\ud800</body></message>",
    "stanza_without_namespace": "<message><body>x</body></message>",
    "stanza_in_server_namespace": "<message xmlns='jabber:server'/>",
    "unknown_jabber_client_element": "<body xmlns='jabber:client'/>",
    "close_in_client_namespace": "<close xmlns='jabber:client'/>",
    "open_in_streams_namespace": "<open xmlns='http://etherx.jabber.org/streams'/>",
    "unknown_framing_element": "<reopen xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>",
    "unknown_streams_element": "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'/>",
    "features_in_client_namespace": "<features xmlns='jabber:client'/>",
    "deep_nesting": "<message xmlns='jabber:client'>" + "<a>" * 300 + "</a>" * 300 + "</message>",
    "text_at_top_level": MESSAGE + "tail",
}


@pytest.mark.parametrize("name", sorted(BAD_MESSAGES))
def test_receive_refuses_bad_message_and_closes(name: str) -> None:
    stream = opened()
    refused(stream, BAD_MESSAGES[name])
    assert stream.state is State.CLOSED


def test_protocol_error_is_a_500_server_error() -> None:
    error = refused(opened(), "hello")
    assert isinstance(error, rostra.ServerError)
    assert error.status_code == 500


def test_protocol_error_does_not_quote_the_message() -> None:
    error = refused(opened(), "<message xmlns='jabber:server'>secret-payload</message>")
    assert "secret-payload" not in error.message


def test_receive_refuses_text_over_the_cap_before_parsing() -> None:
    stream = XmppWebSocketStream("example.org", max_message_bytes=64)
    stream.open()
    error = refused(stream, "<" * 65)  # would be a syntax error if it were parsed
    assert error.message == "The server sent a message over the 64-byte limit: the session was closed"


def test_receive_refuses_utf8_bytes_over_the_cap_even_when_the_text_is_short() -> None:
    stream = XmppWebSocketStream("example.org", max_message_bytes=64)
    stream.open()
    message = "<message xmlns='jabber:client'><body>" + "é" * 10 + "</body></message>"
    assert len(message) <= 64 < len(message.encode())
    error = refused(stream, message)
    assert "64-byte limit" in error.message


def test_receive_accepts_a_message_of_exactly_the_cap() -> None:
    stream = XmppWebSocketStream("example.org", max_message_bytes=len(OPEN))
    stream.open()
    assert isinstance(stream.receive(OPEN), StreamOpened)


def test_receive_before_open_is_refused() -> None:
    stream = XmppWebSocketStream("example.org")
    refused(stream, OPEN)
    assert stream.state is State.CLOSED


def test_receive_stanza_before_the_servers_open_is_refused() -> None:
    stream = XmppWebSocketStream("example.org")
    stream.open()
    error = refused(stream, MESSAGE)
    assert error.message == "The server sent a stanza while the stream was opening"


def test_receive_features_before_the_servers_open_is_refused() -> None:
    stream = XmppWebSocketStream("example.org")
    stream.open()
    refused(stream, FEATURES)


def test_receive_second_open_without_restart_is_refused() -> None:
    refused(opened(), OPEN)


def test_receive_stanza_after_the_servers_close_is_refused() -> None:
    stream = opened()
    stream.receive(CLOSE)
    error = refused(stream, MESSAGE)
    assert error.message == "The server sent a message after the stream closed: the session was closed"


def test_receive_anything_after_a_protocol_error_is_refused() -> None:
    stream = opened()
    refused(stream, "hello")
    refused(stream, MESSAGE)


def test_receive_open_without_version_is_refused() -> None:
    stream = XmppWebSocketStream("example.org")
    stream.open()
    refused(stream, "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='s1'/>")


def test_receive_open_without_id_is_refused() -> None:
    stream = XmppWebSocketStream("example.org")
    stream.open()
    refused(stream, "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' version='1.0'/>")


def test_receive_of_a_non_message_type_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        opened().receive(42)  # type: ignore[arg-type]
