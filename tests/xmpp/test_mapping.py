"""The sans-IO XMPP mapping: exact payloads, exact round trips, the error table, and total parsing."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
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
    ServerError,
    UnreachableError,
)
from rostra._schemas import Contact, ProfileFields
from rostra_xmpp_common import mapping


def xml(element: object) -> str:
    return etree.tostring(element, encoding="unicode")


def reparsed(element: object) -> object:
    """What the peer sees: the element serialised and parsed again."""
    return etree.fromstring(etree.tostring(element))


FULL = ProfileFields(
    nick_name="Zoë <&'\"> 😀",
    image="https://example.org/a.png?x=1&y=2",
    thumb_image="https://example.org/a-thumb.png",
    status="  two\nlines  ",
    mobile_number="+4915112345678",
    email="zoe@example.org",
)

XML_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60).filter(
    lambda s: not mapping._XML_ILLEGAL.search(s) and "\r" not in s
)


# -- builders: exact XML ----------------------------------------------------------------------------------------


def test_register_query_is_exact() -> None:
    assert xml(mapping.build_register_query("alice", "p<&>")) == (
        '<query xmlns="jabber:iq:register"><username>alice</username><password>p&lt;&amp;&gt;</password></query>'
    )


def test_vcard_of_every_field_is_exact() -> None:
    assert xml(mapping.build_vcard(FULL)) == (
        '<vcard xmlns="urn:ietf:params:xml:ns:vcard-4.0">'
        "<nickname><text>Zoë &lt;&amp;'\"&gt; 😀</text></nickname>"
        "<photo><uri>https://example.org/a.png?x=1&amp;y=2</uri></photo>"
        "<photo><parameters><type><text>x-thumbnail</text></type></parameters>"
        "<uri>https://example.org/a-thumb.png</uri></photo>"
        "<note><text>  two\nlines  </text></note>"
        "<tel><uri>tel:+4915112345678</uri></tel>"
        "<email><text>zoe@example.org</text></email>"
        "</vcard>"
    )


def test_vcard_of_empty_fields_is_an_empty_vcard() -> None:
    assert xml(mapping.build_vcard(ProfileFields())) == '<vcard xmlns="urn:ietf:params:xml:ns:vcard-4.0"/>'


def test_profile_publish_carries_item_current_and_contacts_only_access() -> None:
    assert xml(mapping.build_profile_publish(ProfileFields(nick_name="A"))) == (
        '<pubsub xmlns="http://jabber.org/protocol/pubsub"><publish node="urn:xmpp:vcard4"><item id="current">'
        '<vcard xmlns="urn:ietf:params:xml:ns:vcard-4.0"><nickname><text>A</text></nickname></vcard></item>'
        '</publish><publish-options><x xmlns="jabber:x:data" type="submit">'
        '<field var="FORM_TYPE" type="hidden"><value>http://jabber.org/protocol/pubsub#publish-options</value>'
        '</field><field var="pubsub#access_model"><value>presence</value></field></x></publish-options></pubsub>'
    )


def test_the_public_copy_is_published_with_open_access() -> None:
    published = mapping.build_profile_publish(ProfileFields(nick_name="A"), node=mapping.PUBLIC_PROFILE_NODE)
    assert xml(published) == (
        '<pubsub xmlns="http://jabber.org/protocol/pubsub"><publish node="urn:rostra:profile:public:0">'
        '<item id="current">'
        '<vcard xmlns="urn:ietf:params:xml:ns:vcard-4.0"><nickname><text>A</text></nickname></vcard></item>'
        '</publish><publish-options><x xmlns="jabber:x:data" type="submit">'
        '<field var="FORM_TYPE" type="hidden"><value>http://jabber.org/protocol/pubsub#publish-options</value>'
        '</field><field var="pubsub#access_model"><value>open</value></field></x></publish-options></pubsub>'
    )


def test_profile_node_configure_sets_contacts_only_access_and_no_replay() -> None:
    assert xml(mapping.build_profile_node_configure()) == (
        '<pubsub xmlns="http://jabber.org/protocol/pubsub#owner"><configure node="urn:xmpp:vcard4">'
        '<x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE" type="hidden">'
        "<value>http://jabber.org/protocol/pubsub#node_config</value></field>"
        '<field var="pubsub#access_model"><value>presence</value></field>'
        '<field var="pubsub#send_last_published_item"><value>never</value></field></x></configure></pubsub>'
    )


def test_profile_items_request_is_exact() -> None:
    assert xml(mapping.build_profile_items_request()) == (
        '<pubsub xmlns="http://jabber.org/protocol/pubsub"><items node="urn:xmpp:vcard4" max_items="1"/></pubsub>'
    )


def test_last_activity_query_is_exact() -> None:
    assert xml(mapping.build_last_activity_query()) == '<query xmlns="jabber:iq:last"/>'


def test_private_get_asks_for_the_rostra_element() -> None:
    assert xml(mapping.build_private_get()) == (
        '<query xmlns="jabber:iq:private"><rostra xmlns="urn:rostra:metadata:0"/></query>'
    )


def test_private_set_types_every_entry() -> None:
    assert xml(mapping.build_private_set({"a": "x", "rostra.sandbox": True, "n": -3, "f": 0.5})) == (
        '<query xmlns="jabber:iq:private"><rostra xmlns="urn:rostra:metadata:0" version="0">'
        '<entry key="a" type="str">x</entry><entry key="rostra.sandbox" type="bool">true</entry>'
        '<entry key="n" type="int">-3</entry><entry key="f" type="float">0.5</entry></rostra></query>'
    )


def test_roster_set_is_exact() -> None:
    assert xml(mapping.build_roster_set("b@localhost")) == (
        '<query xmlns="jabber:iq:roster"><item jid="b@localhost"/></query>'
    )


def test_roster_remove_is_exact() -> None:
    assert xml(mapping.build_roster_remove("b@localhost")) == (
        '<query xmlns="jabber:iq:roster"><item jid="b@localhost" subscription="remove"/></query>'
    )


def test_upload_request_is_exact() -> None:
    assert xml(mapping.build_upload_request("a b.png", 42, "image/png")) == (
        '<request xmlns="urn:xmpp:http:upload:0" filename="a b.png" size="42" content-type="image/png"/>'
    )


def test_disco_info_result_lists_the_client_features_sorted() -> None:
    assert xml(mapping.build_disco_info_result()) == (
        '<query xmlns="http://jabber.org/protocol/disco#info">'
        '<identity category="client" type="pc" name="Rostra"/>'
        '<feature var="http://jabber.org/protocol/disco#info"/>'
        '<feature var="urn:xmpp:ping"/>'
        '<feature var="urn:xmpp:vcard4+notify"/></query>'
    )


def test_client_features_ask_for_profile_notifications() -> None:
    assert "urn:xmpp:vcard4+notify" in mapping.CLIENT_FEATURES


def test_entity_caps_ver_is_the_xep_0115_example_hash() -> None:
    # XEP-0115 section 5.2's simple example: identity client/pc//Exodus 0.9.1 with four features.
    features = [
        "http://jabber.org/protocol/caps",
        "http://jabber.org/protocol/disco#info",
        "http://jabber.org/protocol/disco#items",
        "http://jabber.org/protocol/muc",
    ]
    assert mapping.entity_caps_ver(features, name="Exodus 0.9.1") == "QgayPKawpkPSDYmwT/WM94uAlu0="


def test_a_control_character_is_refused_before_sending() -> None:
    with pytest.raises(InvalidInputError):
        mapping.build_vcard(ProfileFields(nick_name="a\x00b"))


# -- parsers: round trips --------------------------------------------------------------------------------------


def test_vcard_round_trips_every_field() -> None:
    assert mapping.parse_vcard(reparsed(mapping.build_vcard(FULL))) == FULL


def test_profile_items_result_gives_the_published_fields() -> None:
    pubsub = etree.fromstring(
        '<pubsub xmlns="http://jabber.org/protocol/pubsub"><items node="urn:xmpp:vcard4"><item id="current">'
        + xml(mapping.build_vcard(FULL))
        + "</item></items></pubsub>"
    )
    assert mapping.parse_profile_items(pubsub) == FULL


def test_profile_items_result_without_item_is_empty() -> None:
    pubsub = etree.fromstring(
        '<pubsub xmlns="http://jabber.org/protocol/pubsub"><items node="urn:xmpp:vcard4"/></pubsub>'
    )
    assert mapping.parse_profile_items(pubsub) == ProfileFields()


def test_profile_event_gives_the_published_fields() -> None:
    event = etree.fromstring(
        '<event xmlns="http://jabber.org/protocol/pubsub#event"><items node="urn:xmpp:vcard4"><item id="current">'
        + xml(mapping.build_vcard(FULL))
        + "</item></items></event>"
    )
    assert mapping.parse_profile_event(event) == FULL


def test_event_of_another_node_is_not_a_profile() -> None:
    event = etree.fromstring(
        '<event xmlns="http://jabber.org/protocol/pubsub#event"><items node="urn:xmpp:avatar:metadata">'
        '<item id="x"/></items></event>'
    )
    assert mapping.parse_profile_event(event) is None


def test_vcard_with_unknown_elements_keeps_the_known_fields() -> None:
    vcard = etree.fromstring(
        '<vcard xmlns="urn:ietf:params:xml:ns:vcard-4.0"><fn><text>Full</text></fn>'
        "<nickname><text>nick</text></nickname></vcard>"
    )
    assert mapping.parse_vcard(vcard) == ProfileFields(nick_name="nick")


# What reading keeps of a field (the others read as "" when not of their form: see the mapping's reading rule).
_URLS = st.builds(
    lambda scheme, rest: f"{scheme}://{rest}",
    st.sampled_from(["http", "https"]),
    XML_TEXT.filter(lambda s: not mapping._URL_SPOILERS.search(s)),  # a URL holds no space or control character
)
_E164 = st.from_regex(r"\+[1-9][0-9]{1,14}", fullmatch=True)
_EMAILS = st.from_regex(r"[a-z0-9.'+_-]{1,20}@[a-z0-9-]{1,20}\.[a-z]{2,6}", fullmatch=True)


@given(
    st.builds(
        ProfileFields,
        nick_name=XML_TEXT,
        image=st.one_of(st.just(""), _URLS),
        thumb_image=st.one_of(st.just(""), _URLS),
        status=XML_TEXT,
        mobile_number=st.one_of(st.just(""), _E164),
        email=st.one_of(st.just(""), _EMAILS),
        share_contact_details=st.booleans(),
    )
)
def test_any_xml_legal_profile_text_round_trips(fields: ProfileFields) -> None:
    assert mapping.parse_vcard(reparsed(mapping.build_vcard(fields))) == fields


@pytest.mark.parametrize(
    ("field", "stored"),
    [
        ("image", "javascript:alert(1)"),
        ("image", "data:image/png;base64,bm90IGEgcG5n"),
        ("mobile_number", "12345"),
        ("email", "no email"),
    ],
)
def test_a_field_not_of_its_form_reads_as_empty(field: str, stored: str) -> None:
    vcard = mapping.build_vcard(ProfileFields(nick_name="kept", **{field: stored}))
    assert mapping.parse_vcard(reparsed(vcard)) == ProfileFields(nick_name="kept")


def test_metadata_round_trips_with_exact_types() -> None:
    metadata = {"a": "x", "rostra.sandbox": True, "off": False, "n": -3, "big": 2**70, "f": 0.1}
    parsed = mapping.parse_private_result(reparsed(mapping.build_private_set(metadata)))
    assert parsed == metadata
    assert [type(v) for v in parsed.values()] == [str, bool, bool, int, int, float]


@given(
    st.dictionaries(
        XML_TEXT,
        st.one_of(XML_TEXT, st.booleans(), st.integers(), st.floats(allow_nan=False)),
        max_size=3,
    )
)
def test_any_metadata_round_trips_exactly(metadata: dict[str, str | bool | int | float]) -> None:
    parsed = mapping.parse_private_result(reparsed(mapping.build_private_set(metadata)))
    assert parsed == metadata
    assert [type(v) for v in parsed.values()] == [type(v) for v in metadata.values()]


def test_nan_metadata_reads_back_as_nan() -> None:
    parsed = mapping.parse_metadata(reparsed(mapping.build_metadata({"x": math.nan})))
    assert parsed is not None
    assert math.isnan(parsed["x"])


def test_empty_metadata_element_means_nothing_stored() -> None:
    assert mapping.parse_private_result(reparsed(mapping.build_private_get())) is None


def test_stored_empty_metadata_is_an_empty_dict() -> None:
    assert mapping.parse_private_result(reparsed(mapping.build_private_set({}))) == {}


def test_last_activity_gives_the_seconds() -> None:
    assert mapping.parse_last_activity(etree.fromstring('<query xmlns="jabber:iq:last" seconds="903">x</query>')) == 903


@pytest.mark.parametrize(
    ("subscription", "ask", "expected"),
    [
        ("none", None, Contact(user_jid="b@localhost", subscription="none", is_friend=False)),
        ("none", "subscribe", Contact(user_jid="b@localhost", subscription="none", is_friend=False)),
        ("to", None, Contact(user_jid="b@localhost", subscription="to", is_friend=False)),
        ("from", "subscribe", Contact(user_jid="b@localhost", subscription="from", is_friend=False)),
        ("both", None, Contact(user_jid="b@localhost", subscription="both", is_friend=True)),
    ],
)
def test_roster_item_becomes_a_contact(subscription: str, ask: str | None, expected: Contact) -> None:
    item = etree.Element("{jabber:iq:roster}item", {"jid": "b@localhost", "subscription": subscription})
    if ask:
        item.set("ask", ask)
    assert mapping.parse_roster_item(item) == expected


def test_roster_item_without_subscription_is_none() -> None:
    item = etree.fromstring('<item xmlns="jabber:iq:roster" jid="b@localhost"/>')
    assert mapping.parse_roster_item(item) == Contact(user_jid="b@localhost", subscription="none", is_friend=False)


def test_roster_result_lists_contacts_in_order() -> None:
    query = etree.fromstring(
        '<query xmlns="jabber:iq:roster"><item jid="a@localhost" subscription="both"/>'
        '<item jid="b@localhost" subscription="to"/></query>'
    )
    assert mapping.parse_roster(query) == [
        Contact(user_jid="a@localhost", subscription="both", is_friend=True),
        Contact(user_jid="b@localhost", subscription="to", is_friend=False),
    ]


def test_upload_slot_keeps_only_the_allowed_headers() -> None:
    slot = etree.fromstring(
        '<slot xmlns="urn:xmpp:http:upload:0"><put url="https://u.example/p">'
        '<header name="Authorization">Basic x\n</header><header name="Host">evil</header></put>'
        '<get url="https://u.example/g"/></slot>'
    )
    assert mapping.parse_upload_slot(slot) == mapping.UploadSlot(
        put_url="https://u.example/p", get_url="https://u.example/g", headers={"Authorization": "Basic x"}
    )


def test_disco_info_gives_the_features() -> None:
    info = etree.fromstring(
        '<query xmlns="http://jabber.org/protocol/disco#info"><feature var="urn:xmpp:http:upload:0"/></query>'
    )
    assert mapping.parse_disco_features(info) == frozenset({"urn:xmpp:http:upload:0"})


def test_disco_items_gives_the_jids() -> None:
    items = etree.fromstring(
        '<query xmlns="http://jabber.org/protocol/disco#items"><item jid="upload.localhost"/></query>'
    )
    assert mapping.parse_disco_items(items) == ["upload.localhost"]


# -- errors ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "operation", "status"),
    [
        ("conflict", "register", 409),
        ("not-acceptable", "register", 400),
        ("jid-malformed", "register", 400),
        ("bad-request", "set_profile", 400),
        ("not-authorized", "connect", 401),
        ("forbidden", "last_seen", 403),
        ("subscription-required", "last_seen", 403),
        ("item-not-found", "get_profile", 404),
        ("remote-server-not-found", "get_profile", 404),
        ("recipient-unavailable", "last_seen", 404),
        ("remote-server-timeout", "get_profile", 408),
        ("policy-violation", "register", 429),
        ("resource-constraint", "set_profile", 429),
        ("payload-too-big", "set_profile", 413),
        ("file-too-large", "upload", 413),
        ("not-acceptable", "upload", 413),
        ("service-unavailable", "last_seen", 403),
        ("service-unavailable", "get_profile", 404),
        ("service-unavailable", "register", 403),
        ("service-unavailable", "upload", 503),
        ("internal-server-error", "get_profile", 500),
        ("undefined-condition", "set_metadata", 500),
        ("something-new", "get_metadata", 500),
    ],
)
def test_error_condition_gives_its_status_code(condition: str, operation: str, status: int) -> None:
    assert mapping.error_from_condition(condition, operation=operation, text=None).status_code == status


def test_error_classes_are_the_documented_ones() -> None:
    cases = {
        "conflict": ConflictError,
        "bad-request": InvalidInputError,
        "not-authorized": AuthenticationError,
        "forbidden": ForbiddenError,
        "item-not-found": NotFoundError,
        "remote-server-timeout": RequestTimeoutError,
        "policy-violation": RateLimitedError,
        "payload-too-big": PayloadTooLargeError,
        "internal-server-error": ServerError,
    }
    assert {c: type(mapping.error_from_condition(c, operation="x", text=None)) for c in cases} == cases


def test_service_unavailable_elsewhere_is_unreachable() -> None:
    assert isinstance(mapping.error_from_condition("service-unavailable", operation="x", text=None), UnreachableError)


def test_error_message_says_what_to_do_and_quotes_the_server() -> None:
    error = mapping.error_from_condition("conflict", operation="register", text="The username already exists.")
    assert error.message == (
        "register failed (conflict): it exists already: pick another name, or use the credentials you stored. "
        "The server said: The username already exists."
    )


def test_stanza_error_is_parsed_with_its_text() -> None:
    error = etree.fromstring(
        '<error type="wait"><policy-violation xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>'
        '<text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">Too many</text></error>'
    )
    assert mapping.parse_stanza_error(error) == mapping.StanzaError(
        type="wait", condition="policy-violation", text="Too many"
    )


def test_upload_file_too_large_application_condition_is_413() -> None:
    error = etree.fromstring(
        '<error type="modify"><not-acceptable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>'
        '<file-too-large xmlns="urn:xmpp:http:upload:0"><max-file-size>10</max-file-size></file-too-large></error>'
    )
    assert mapping.error_from_stanza_error(error, operation="set_profile").status_code == 413


# -- malformed input is a ServerError, never a crash ------------------------------------------------------------

MALFORMED = [
    (mapping.parse_vcard, '<vcard xmlns="urn:wrong"/>'),
    (mapping.parse_profile_items, '<items xmlns="http://jabber.org/protocol/pubsub"/>'),
    (mapping.parse_profile_event, '<event xmlns="urn:wrong"/>'),
    (mapping.parse_last_activity, '<query xmlns="jabber:iq:last"/>'),
    (mapping.parse_last_activity, '<query xmlns="jabber:iq:last" seconds="-1"/>'),
    (mapping.parse_last_activity, '<query xmlns="jabber:iq:last" seconds="\uff11\uff12"/>'),
    (mapping.parse_metadata, '<rostra xmlns="urn:rostra:metadata:0" version="0"><entry type="str">x</entry></rostra>'),
    (mapping.parse_metadata, '<rostra xmlns="urn:rostra:metadata:0"><entry key="k" type="int">x</entry></rostra>'),
    (mapping.parse_metadata, '<rostra xmlns="urn:rostra:metadata:0"><entry key="k" type="bool">1</entry></rostra>'),
    (mapping.parse_metadata, '<rostra xmlns="urn:rostra:metadata:0"><entry key="k" type="list">x</entry></rostra>'),
    (mapping.parse_private_result, '<query xmlns="jabber:iq:roster"/>'),
    (mapping.parse_roster_item, '<item xmlns="jabber:iq:roster"/>'),
    (mapping.parse_roster_item, '<item xmlns="jabber:iq:roster" jid="a@b" subscription="many"/>'),
    (mapping.parse_upload_slot, '<slot xmlns="urn:xmpp:http:upload:0"><put url="https://a"/></slot>'),
    (
        mapping.parse_upload_slot,
        '<slot xmlns="urn:xmpp:http:upload:0"><put url="javascript:x"/><get url="https://a"/></slot>',
    ),
    (mapping.parse_disco_features, '<query xmlns="http://jabber.org/protocol/disco#items"/>'),
    (mapping.parse_stanza_error, "<notanerror/>"),
]


@pytest.mark.parametrize(("parse", "payload"), MALFORMED)
def test_malformed_payload_is_a_server_error(parse: object, payload: str) -> None:
    with pytest.raises(ServerError):
        parse(etree.fromstring(payload))  # type: ignore[operator]


@pytest.mark.parametrize(
    "parse",
    [mapping.parse_vcard, mapping.parse_profile_items, mapping.parse_last_activity, mapping.parse_upload_slot],
)
def test_a_comment_node_is_a_server_error(parse: object) -> None:
    with pytest.raises(ServerError):
        parse(etree.Comment("x"))  # type: ignore[operator]


_TAGS = st.sampled_from(["nickname", "photo", "uri", "text", "parameters", "type", "note", "tel", "email", "x"])
_TREES = st.recursive(
    st.tuples(_TAGS, XML_TEXT, st.just([])),
    lambda children: st.tuples(_TAGS, XML_TEXT, st.lists(children, max_size=3)),
    max_leaves=12,
)


def _grow(parent: object, tree: tuple[str, str, list[object]]) -> None:
    tag, text, children = tree
    child = etree.SubElement(parent, f"{{{mapping.NS_VCARD4}}}{tag}")  # type: ignore[arg-type]
    child.text = text
    for grandchild in children:
        _grow(child, grandchild)  # type: ignore[arg-type]


@given(st.lists(_TREES, max_size=4))
def test_any_shape_under_a_vcard_parses_to_fields(trees: list[tuple[str, str, list[object]]]) -> None:
    vcard = etree.Element(f"{{{mapping.NS_VCARD4}}}vcard")
    for tree in trees:
        _grow(vcard, tree)
    assert type(mapping.parse_vcard(vcard)) is ProfileFields


@pytest.mark.parametrize(
    ("subscription", "ask", "stands"),
    [
        ("none", None, False),
        ("from", None, False),
        ("none", "subscribe", True),
        ("from", "subscribe", True),
        ("to", None, True),
        ("both", None, True),
    ],
)
def test_our_request_stands_while_pending_or_granted(subscription: str, ask: str | None, stands: bool) -> None:
    assert mapping.our_request_stands(subscription, ask) is stands
