"""send() writes the same text whether the tree is already in wire form (sent as is) or has to be rebuilt."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from lxml import etree

from rostra_ws._stream import XmppWebSocketStream
from rostra_xmpp_common import mapping

OPEN = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='s1' from='example.org' version='1.0'/>"


def opened() -> XmppWebSocketStream:
    stream = XmppWebSocketStream("example.org")
    stream.open()
    stream.receive(OPEN)
    return stream


def _client(tag: str, attrs: dict[str, str] | None = None, nsmap: dict[Any, str] | None = None) -> Any:
    return etree.Element(f"{{jabber:client}}{tag}", attrs or {}, nsmap=nsmap or {None: "jabber:client"})


def _profile_request() -> Any:
    iq = _client("iq", {"type": "get", "id": "p1", "to": "alice@example.org"})
    iq.append(copy.copy(mapping.build_profile_items_request()))
    return iq


def _redundant_declaration() -> Any:
    return etree.fromstring(
        '<iq xmlns="jabber:client" id="r"><query xmlns="jabber:iq:roster"><item xmlns="jabber:iq:roster"/></query></iq>'
    )


def _cdata_body() -> Any:
    message = _client("message")
    etree.SubElement(message, "{jabber:client}body").text = etree.CDATA("a<b")
    return message


def _prefixed_stanza() -> Any:
    return _client("message", nsmap={"c": "jabber:client"})


def _element_with_a_parent() -> Any:
    wrapper = etree.Element("{urn:example:wrap}wrap", nsmap={None: "urn:example:wrap"})
    return etree.SubElement(wrapper, "{jabber:client}presence", nsmap={None: "jabber:client"})


def _xmlns_in_text() -> Any:
    presence = _client("presence")
    etree.SubElement(presence, "{jabber:client}status").text = 'say xmlns="x"'
    return presence


def _root_tail() -> Any:
    presence = _client("presence")
    presence.tail = "after"
    return presence


def _namespaced_attribute() -> Any:
    return _client("presence", {"{urn:example:x}a": "1"}, nsmap={None: "jabber:client", "x": "urn:example:x"})


def _xml_lang() -> Any:
    return _client("presence", {"{http://www.w3.org/XML/1998/namespace}lang": "en"})


def _inherited_namespace_child() -> Any:
    iq = _client("iq", {"type": "get", "id": "q"})
    etree.SubElement(iq, "{jabber:client}query")
    return iq


def _no_namespace_child() -> Any:
    iq = _client("iq", {"type": "get", "id": "q"})
    etree.SubElement(iq, "query")
    return iq


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (
            _profile_request,
            '<iq xmlns="jabber:client" type="get" id="p1" to="alice@example.org">'
            '<pubsub xmlns="http://jabber.org/protocol/pubsub"><items node="urn:xmpp:vcard4" max_items="1"/></pubsub>'
            "</iq>",
        ),
        (
            _redundant_declaration,
            '<iq xmlns="jabber:client" id="r"><query xmlns="jabber:iq:roster"><item/></query></iq>',
        ),
        (_cdata_body, '<message xmlns="jabber:client"><body>a&lt;b</body></message>'),
        (_prefixed_stanza, '<message xmlns="jabber:client"/>'),
        (_element_with_a_parent, '<presence xmlns="jabber:client"/>'),
        (_xmlns_in_text, '<presence xmlns="jabber:client"><status>say xmlns="x"</status></presence>'),
        (_root_tail, '<presence xmlns="jabber:client"/>'),
        (_namespaced_attribute, '<presence xmlns="jabber:client" xmlns:ns0="urn:example:x" ns0:a="1"/>'),
        (_xml_lang, '<presence xmlns="jabber:client" xml:lang="en"/>'),
        (_inherited_namespace_child, '<iq xmlns="jabber:client" type="get" id="q"><query/></iq>'),
        (_no_namespace_child, '<iq xmlns="jabber:client" type="get" id="q"><query/></iq>'),
    ],
    ids=lambda value: getattr(value, "__name__", "expected")[1:] if callable(value) else "text",
)
def test_send_writes_the_one_wire_form_of_each_tree(build: Callable[[], Any], expected: str) -> None:
    assert opened().send(build()) == expected


def test_send_as_is_leaves_the_callers_tail_in_place() -> None:
    presence = _root_tail()
    opened().send(presence)
    assert presence.tail == "after"


def test_send_as_is_still_refuses_a_comment_deep_in_the_tree() -> None:
    iq = _profile_request()
    iq[0][0].append(etree.Comment("no"))
    with pytest.raises(TypeError, match="comments"):
        opened().send(iq)
