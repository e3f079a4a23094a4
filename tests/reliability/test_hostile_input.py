"""Hostile and odd input, from the caller and from the server, through the Client on the suite's XMPP server.

From the caller (xmpp:// and ws://): unicode and XML metacharacters in every text field come back exactly, read by
the author, by another user and in a contact's profile event; control characters, surrogates and non-characters
are a 400 and nothing reaches the wire (the proxy in front of the server counts the client's bytes).
From the server: see the sections below.
"""

from __future__ import annotations

import resource
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import msgspec
import pytest
from _peers import (
    Account,
    Clients,
    WsPeer,
    WsPeerClosed,
    XmppPeer,
    clients_on,
    loop_errors,
    statuses,
    ws_peer,
    xmpp_peer,
)
from lxml import etree
from wsproto.events import CloseConnection

import rostra
from _prosody import XmppServer
from rostra import ConnectionStatus as S

pytestmark = pytest.mark.anyio

GUARD = 15  # the bound of every wait that must not hang

# Names are at most 30 code points; every value is kept exactly (no normalization: NFC and NFD differ).
UNICODE_NAMES = [
    "Zoë",  # NFC
    "Zoe\u0308",  # NFD: a combining diaeresis
    "Z\u0351\u0315a\u0364\u0368l\u036bg\u0310o",  # stacked combining marks
    "שָׁלוֹם עולם",  # Hebrew with points: right-to-left
    "مرحبا 42",  # Arabic and digits
    "\u200fRTL mark",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛",  # astral-plane letters  # noqa: RUF001 - look-alikes on purpose
    "🦄🐉𓂀",  # astral-plane emoji and a hieroglyph
    "👨‍👩‍👧‍👦 👩🏽‍💻",  # ZWJ sequences, a skin tone
    "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f 1️⃣",  # a tag sequence flag, a keycap
]
UNICODE_STATUSES = [
    "".join(UNICODE_NAMES)[:139],
    "  leading and trailing spaces  ",
    "\u200b\u2060\ufeff",  # invisible format characters only: a status may be blank
]
# XML metacharacters and things that look like markup or entities, in every free-text field.
MARKUP = [
    "<>&'\"",
    "]]>",
    "&amp; &lt;b&gt;",
    "&#x41;&#65;",
    "<![CDATA[x]]>",
    "<!-- c --><?pi x?>",
    "</text></nickname>",
    "<!DOCTYPE x [<!ENTITY e 'boom'>]>&e;",
]
MARKUP_EMAILS = ["o'brien&co@example.com", "&amp&lt'@example.com"]
MARKUP_URL = "https://example.org/a.png?q=<&>'\"]]>&amp;&#x41;<![CDATA[x]]>"
MARKUP_METADATA = {"<k>&amp;'\"": "]]>&#x41;<![CDATA[v]]>", "&lt;": "</query><x/>", "plan": "<!-- -->"}
# Every code point no string argument may hold: C0 controls, DEL, C1 controls, surrogates (their ends), U+FFFE/F.
FORBIDDEN = [
    *map(chr, range(0x20)),
    "\x7f",
    *map(chr, range(0x80, 0xA0)),
    *map(chr, (0xD800, 0xDBFF, 0xDC00, 0xDFFF, 0xFFFE, 0xFFFF)),
]

KINDS = ["xmpp", "ws"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aioxmpp, behind xmpp://, runs on asyncio only


@pytest.fixture(params=KINDS)
async def clients(request: pytest.FixtureRequest, xmpp_server: XmppServer) -> AsyncIterator[Clients]:
    async with clients_on(xmpp_server, request.param) as made:
        yield made


async def befriend(a: rostra.Client, a_jid: str, b: rostra.Client, b_jid: str) -> None:
    friends = {a_jid: anyio.Event(), b_jid: anyio.Event()}

    def on_contact(event: rostra.ContactEvent) -> None:
        if event.data.is_friend and event.data.user_jid in friends:
            friends[event.data.user_jid].set()

    a.add_contact_listener(on_contact)
    b.add_contact_listener(on_contact)
    with anyio.fail_after(GUARD):
        await a.add_contact(b_jid)
        await b.add_contact(a_jid)
        await friends[a_jid].wait()
        await friends[b_jid].wait()


class Pushed:
    """The profile events ``sdk`` receives for ``jid``, as the server pushes them."""

    def __init__(self, sdk: rostra.Client, jid: str) -> None:
        self.jid = jid
        self.profiles: list[rostra.Profile] = []
        self._changed = anyio.Event()
        sdk.add_user_profile_listener(self._on)

    def _on(self, event: rostra.ProfileEvent) -> None:
        if event.data.user_jid == self.jid:
            self.profiles.append(event.data)
            self._changed.set()

    async def next(self) -> rostra.Profile:
        with anyio.fail_after(GUARD):
            while not self.profiles:
                self._changed = anyio.Event()
                await self._changed.wait()
        return self.profiles.pop(0)


_ATTRIBUTES = {"name": "nick_name"}


def _pick(profile: rostra.Profile, change: dict[str, str]) -> dict[str, str]:
    return {field: getattr(profile, _ATTRIBUTES.get(field, field)) for field in change}


async def round_trips(clients: Clients, changes: list[dict[str, str]]) -> list[tuple[dict[str, str], ...]]:
    """For each change: ``(what set returned, what the author reads, what the contact reads, what the contact's
    profile event holds)``, each restricted to the changed fields."""
    alice, bob = await clients.account(), await clients.account()
    author, contact = await clients.connected(alice), await clients.connected(bob)
    await befriend(author, alice.jid, contact, bob.jid)
    pushed = Pushed(contact, alice.jid)
    outcomes = []
    for change in changes:
        stored = (await author.set_user_profile(**change)).data
        event = await pushed.next()
        own = (await author.get_user_profile(alice.jid)).data
        other = (await contact.get_user_profile(alice.jid)).data
        pushed.profiles.clear()  # the contact's own read is a profile event too
        outcomes.append((_pick(stored, change), _pick(own, change), _pick(other, change), _pick(event, change)))
    return outcomes


async def test_unicode_names_and_statuses_round_trip_exactly(clients: Clients) -> None:
    changes = [{"name": name} for name in UNICODE_NAMES] + [{"status": status} for status in UNICODE_STATUSES]
    assert await round_trips(clients, changes) == [(change,) * 4 for change in changes]


async def test_xml_metacharacters_in_every_profile_field_round_trip_exactly(clients: Clients) -> None:
    changes = [
        *({"name": text[:30], "status": text * 3} for text in MARKUP),
        *({"email": email} for email in MARKUP_EMAILS),
        {"image": MARKUP_URL},
        {"name": "".join(MARKUP)[:30], "status": "".join(MARKUP)[:139], "email": MARKUP_EMAILS[0]},
    ]
    assert await round_trips(clients, changes) == [(change,) * 4 for change in changes]


async def test_xml_metacharacters_in_metadata_round_trip_exactly(clients: Clients) -> None:
    sdk = await clients.client(clients.direct_url)
    data = (await sdk.register(f"m{uuid.uuid4().hex}", MARKUP_METADATA)).data
    await sdk.connect(data.username, data.password)
    assert (await sdk.get_metadata()).data == MARKUP_METADATA


async def test_forbidden_characters_in_any_argument_are_400_and_nothing_is_sent(clients: Clients) -> None:
    alice = await clients.account("Alice")
    sdk = await clients.connected(alice, clients.proxy_url)
    before = (await sdk.get_user_profile(alice.jid)).data
    # Frozen: the server's own queries (disco of our caps...) cannot reach the client, so it has nothing to answer
    # and every byte it sends meanwhile would come from the calls below.
    clients.proxy.freeze()
    sent = clients.proxy.sent_bytes
    calls = {
        "name": lambda bad: sdk.set_user_profile(name=f"A{bad}b"),
        "status": lambda bad: sdk.set_user_profile(status=f"{bad}busy"),
        "mobile_number": lambda bad: sdk.set_user_profile(mobile_number=f"+14155552671{bad}"),
        "email": lambda bad: sdk.set_user_profile(email=f"a{bad}@example.com"),
        "image": lambda bad: sdk.set_user_profile(image=f"https://example.org/{bad}.png"),
        "jid": lambda bad: sdk.get_user_profile(f"bo{bad}b@localhost"),
        "contact": lambda bad: sdk.add_contact(f"bob@localhost/{bad}"),
        "metadata": lambda bad: sdk.register("fresh1", {"plan": bad}),
    }
    outcomes: dict[tuple[str, str], int | str] = {}
    for field, call in calls.items():
        for bad in FORBIDDEN:
            try:
                await call(bad)
                outcomes[(field, f"U+{ord(bad):04X}")] = "accepted"
            except rostra.RostraError as exc:
                outcomes[(field, f"U+{ord(bad):04X}")] = exc.status_code
    sent = clients.proxy.sent_bytes - sent
    clients.proxy.thaw()
    after = (await (await clients.connected(alice)).get_user_profile(alice.jid)).data
    assert set(outcomes.values()) == {400}, {key: code for key, code in outcomes.items() if code != 400}
    assert (len(outcomes), sent, after) == (len(calls) * len(FORBIDDEN), 0, before)


async def test_a_refused_argument_leaves_the_session_usable(clients: Clients) -> None:
    alice: Account = await clients.account("Alice")
    sdk = await clients.connected(alice)
    with pytest.raises(rostra.InvalidInputError):
        await sdk.set_user_profile(name="ok", status="bad\x00")
    before = (await sdk.get_user_profile(alice.jid)).data
    assert (await sdk.set_user_profile(status="fine")).data == msgspec.structs.replace(before, status="fine")


# -- from the server, over ws:// (plaintext: a scripted peer sends exactly the bytes under test) ------------------

BILLION_LAUGHS = (
    "<!DOCTYPE lolz [<!ENTITY lol0 'lol'>"
    + "".join(f"<!ENTITY lol{i} '{f'&lol{i - 1};' * 10}'>" for i in range(1, 10))
    + "]>"
)


def _iq_reply(iq: etree._Element, inner: str, namespace: str = "jabber:client") -> str:
    return f"<iq xmlns='{namespace}' type='result' id='{iq.get('id')}'>{inner}</iq>"


BREAKERS: dict[str, Callable[[WsPeer, etree._Element], Awaitable[None]]] = {
    "not-well-formed": lambda peer, iq: peer.send(_iq_reply(iq, "<query xmlns='jabber:iq:private'>")[:-5]),
    "billion-laughs": lambda peer, iq: peer.send(BILLION_LAUGHS + _iq_reply(iq, "&lol9;")),
    "entity-reference": lambda peer, iq: peer.send(_iq_reply(iq, "&xxe;")),
    "over-the-size-cap": lambda peer, iq: peer.send(_iq_reply(iq, "<query xmlns='jabber:iq:private'/>" + " " * 5000)),
    "wrong-namespace": lambda peer, iq: peer.send(_iq_reply(iq, "", namespace="jabber:server")),
    "binary-message": lambda peer, iq: peer.send_frame(0x2, b"<iq/>"),
    "invalid-utf-8": lambda peer, iq: peer.send_frame(0x1, b"<iq id='\xff\xfe'/>"),
    "close-frame-without-close-element": lambda peer, iq: peer.stream.send(peer.ws.send(CloseConnection(code=1000))),
}
WS_CASES = ["asyncio", "trio"]
# What connection listeners see when the server breaks the stream: once DISCONNECTED (a Client that does not
# reconnect), or once RECONNECTING and, as the fake server takes the next login, CONNECTED.
LOSS = ([S.RECONNECTING], [S.RECONNECTING, S.CONNECTED])  # the Client retries by itself (inside async with)


@pytest.mark.parametrize("anyio_backend", WS_CASES)
@pytest.mark.parametrize("breaker", BREAKERS)
async def test_a_server_that_breaks_the_stream_fails_the_pending_request_and_is_reported_once(breaker: str) -> None:
    async def script(peer: WsPeer) -> None:
        await peer.login()
        await BREAKERS[breaker](peer, await peer.recv())
        await peer.serve()

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with loop_errors() as errors:
        async with ws_peer(script) as (url, _), rostra.Client(url, allow_plain=True, max_message_bytes=4096) as sdk:
            await sdk.connect("alice", "secret")
            seen = statuses(sdk)
            with anyio.fail_after(GUARD), pytest.raises(rostra.RostraError) as caught:
                await sdk.get_metadata()  # request_timeout is 10 s: only the broken stream ends it this soon
            await anyio.sleep(0.5)  # a second loss status would come now
            outcome = (type(caught.value).__name__, caught.value.status_code, list(seen))
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert (outcome[:2], outcome[2] in LOSS, errors, grown_mib < 64) == (("UnreachableError", 503), True, [], True)


_VCARD = (
    "<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:vcard4'><item id='current'>{}</item>"
    "</items></pubsub>"
)
# (the call, the payload of its reply, the outcome: 200 or the RostraError's code). A profile the mapping cannot use
# reads as empty (200); any other unusable answer is a ServerError (500); the session goes on either way.
GARBAGE_REPLIES: dict[str, tuple[str, str, int]] = {
    "profile-markup-in-text": (
        "get_user_profile",
        _VCARD.format(
            "<vcard xmlns='urn:ietf:params:xml:ns:vcard-4.0'><nickname><text>x<b/>y</text></nickname>"
            "<tel><uri>not-a-tel</uri></tel><email><text>no email</text></email></vcard>"
        ),
        200,
    ),
    "profile-wrong-namespace": (
        "get_user_profile",
        _VCARD.format("<vcard xmlns='urn:x:garbage'><nickname/></vcard>"),
        200,
    ),
    "profile-no-items": ("get_user_profile", "<pubsub xmlns='http://jabber.org/protocol/pubsub'/><extra/>", 200),
    "metadata-junk": (
        "get_metadata",
        "<query xmlns='jabber:iq:private'><rostra xmlns='urn:rostra:metadata:0'><entry/>junk</rostra></query>",
        500,
    ),
    "metadata-wrong-namespace": ("get_metadata", "<query xmlns='urn:x:garbage'/>", 500),
    "roster-junk": (
        "get_contacts",
        "<query xmlns='jabber:iq:roster'><item/><item jid='@@@' subscription='sideways'/></query>",
        500,
    ),
    "last-seen-not-a-number": ("get_last_seen", "<query xmlns='jabber:iq:last' seconds='soon'/>", 500),
    "last-seen-negative": ("get_last_seen", "<query xmlns='jabber:iq:last' seconds='-5'/>", 500),
    "metadata-empty-result": ("get_metadata", "", 200),
    "last-seen-empty-result": ("get_last_seen", "", 500),
    "error-without-condition": ("get_metadata", "<error type='bogus'><nonsense xmlns='urn:x'/></error>", 500),
}
CALLS: dict[str, Callable[[rostra.Client], Awaitable[object]]] = {
    "get_user_profile": lambda sdk: sdk.get_user_profile("bob@localhost"),
    "get_metadata": lambda sdk: sdk.get_metadata(),
    "get_contacts": lambda sdk: sdk.get_contacts(),
    "get_last_seen": lambda sdk: sdk.get_last_seen("bob@localhost"),
}


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("garbage", GARBAGE_REPLIES)
async def test_garbage_in_a_reply_with_the_right_id_is_a_clear_answer_and_the_session_goes_on(garbage: str) -> None:
    call, payload, expected = GARBAGE_REPLIES[garbage]

    async def script(peer: WsPeer) -> None:
        await peer.login()
        iq = await peer.recv()
        type_ = "error" if payload.startswith("<error") else "result"
        sender = f" from='{iq.get('to')}'" if iq.get("to") else ""
        await peer.send(f"<iq xmlns='jabber:client' type='{type_}' id='{iq.get('id')}'{sender}>{payload}</iq>")
        await peer.serve()

    with loop_errors() as errors:
        async with ws_peer(script) as (url, _), rostra.Client(url, allow_plain=True) as sdk:
            await sdk.connect("alice", "secret")
            seen = statuses(sdk)
            with anyio.fail_after(GUARD):
                try:
                    code = getattr(await CALLS[call](sdk), "status_code", None)
                except rostra.RostraError as exc:
                    code = exc.status_code
                after = (await sdk.get_metadata()).data  # the next request gets its own answer
            outcome = (code, after, list(seen), sdk.state)
    assert (outcome, errors) == ((expected, {}, [], rostra.State.CONNECTED), [])


# -- from the server, over xmpp:// (STARTTLS with the suite's certificate; aioxmpp parses the stream) -------------


def _is_private_query(element: etree._Element) -> bool:
    return len(element) > 0 and element[0].tag == "{jabber:iq:private}query"


def _iq_result(iq: etree._Element, inner: str) -> str:
    return f"<iq type='result' id='{iq.get('id')}'>{inner}</iq>"


_EMPTY_METADATA = "<query xmlns='jabber:iq:private'><rostra xmlns='urn:rostra:metadata:0'/></query>"
CAP = 1_048_576  # the default max_message_bytes


def _message(size: int) -> str:
    """A message stanza of exactly ``size`` bytes."""
    return f"<message><body>{'x' * (size - 32)}</body></message>"


# (what the peer does to the pending get_metadata, the outcome of that call, whether the session is lost).
XMPP_BREAKERS: dict[str, tuple[Callable[[XmppPeer, etree._Element], Awaitable[None]], int, bool]] = {
    "billion-laughs-mid-stream": (lambda peer, iq: peer.send(BILLION_LAUGHS + _iq_result(iq, "&lol9;")), 503, True),
    "entity-reference": (lambda peer, iq: peer.send(_iq_result(iq, "&xxe;")), 503, True),
    "not-well-formed": (lambda peer, iq: peer.send(_iq_result(iq, "<query>")), 503, True),
    "garbage-payload": (
        lambda peer, iq: peer.send(_iq_result(iq, "<garbage xmlns='urn:x'><a/>junk</garbage>")),
        500,
        False,
    ),
    "junk-metadata": (
        lambda peer, iq: peer.send(
            _iq_result(iq, _EMPTY_METADATA.replace("/></query>", "><entry/>junk</rostra></query>"))
        ),
        500,
        False,
    ),
    # An empty result, as for no stored metadata: {} (200), as on ws://.
    "empty-result": (lambda peer, iq: peer.send(f"<iq type='result' id='{iq.get('id')}'/>"), 200, False),
    # One stanza is at most max_message_bytes (1 MiB by default) from its "<" to its end tag, as one ws:// message.
    "oversized-element": (lambda peer, iq: peer.send(_message(8_000_000) + _iq_result(iq, _EMPTY_METADATA)), 503, True),
    "a-stanza-of-exactly-the-cap": (
        lambda peer, iq: peer.send(_message(CAP) + _iq_result(iq, _EMPTY_METADATA)),
        200,
        False,
    ),
    "a-stanza-one-byte-over-the-cap": (
        lambda peer, iq: peer.send(_message(CAP + 1) + _iq_result(iq, _EMPTY_METADATA)),
        503,
        True,
    ),
}


@pytest.mark.parametrize("breaker", XMPP_BREAKERS)
async def test_an_xmpp_server_that_sends_garbage_gets_a_clear_error_never_a_hang(
    xmpp_server: XmppServer, breaker: str
) -> None:
    broken = False
    action, expected, lost = XMPP_BREAKERS[breaker]

    async def script(peer: XmppPeer) -> None:
        nonlocal broken
        await peer.login()
        while True:
            iq = await peer.serve_until(_is_private_query)
            if broken:
                await peer.reply(iq, _EMPTY_METADATA)
            else:
                broken = True
                await action(peer, iq)

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with loop_errors() as errors:
        async with (
            xmpp_peer(xmpp_server, script) as (url, _),
            rostra.Client(url, ca_file=str(xmpp_server.ca_file)) as sdk,
        ):
            await sdk.connect("alice", "secret")
            seen = statuses(sdk)
            with anyio.fail_after(GUARD):  # request_timeout is 10 s: only the broken stream ends it this soon
                try:
                    code = (await sdk.get_metadata()).status_code
                except rostra.RostraError as exc:
                    code = exc.status_code
                await anyio.sleep(0.5)  # a second loss status would come now
            first = list(seen)
            if not lost:
                with anyio.fail_after(GUARD):
                    assert (await sdk.get_metadata()).data == {}  # the next request gets its own answer
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert (code, first in LOSS if lost else first == [], errors, grown_mib < 128) == (expected, True, [], True)


async def _small_cap_outcome(
    xmpp_server: XmppServer, send: Callable[[XmppPeer, etree._Element], Awaitable[None]]
) -> tuple[tuple[int, str], list[S], list[str | None], list[str]]:
    """Under max_message_bytes=4096: the pending get_metadata's status code and message, the statuses, what the peer
    received
    after ``send`` (a stream error's children as name=text, an element's tag, or None), and the loop errors."""
    received: list[str | None] = []
    answered = anyio.Event()

    async def script(peer: XmppPeer) -> None:
        await peer.login()
        await send(peer, await peer.serve_until(_is_private_query))
        try:
            element: etree._Element | None = await peer.recv()
        except WsPeerClosed:  # recv reports the stream's end even when an element came just before it
            element = peer._ready.popleft() if peer._ready else None
        finally:
            answered.set()
        if element is None:
            received.append(None)
            return
        if element.tag == "{http://etherx.jabber.org/streams}error":  # its condition and its text
            received.append(" ".join(f"{etree.QName(child).localname}={child.text}" for child in element))
        else:
            received.append(element.tag)
        await peer.serve()

    with loop_errors() as errors:
        async with (
            xmpp_peer(xmpp_server, script) as (url, _),
            rostra.Client(url, ca_file=str(xmpp_server.ca_file), max_message_bytes=4096, reconnect=False) as sdk,
        ):
            await sdk.connect("alice", "secret")
            seen = statuses(sdk)
            with anyio.fail_after(GUARD):
                try:
                    answer = (await sdk.get_metadata()).status_code, ""
                except rostra.RostraError as exc:
                    answer = exc.status_code, exc.message
                await answered.wait()
            await anyio.sleep(0.5)  # a second loss status would come now
            return answer, list(seen), received, errors


async def test_max_message_bytes_bounds_each_stanza_and_the_server_is_told_policy_violation(
    xmpp_server: XmppServer,
) -> None:
    """The option ws:// applies per message bounds each stanza on xmpp://; over it the stream ends with the stream
    error policy-violation sent to the server, the pending request fails at once (503) and the loss is one status."""

    async def send(peer: XmppPeer, iq: etree._Element) -> None:
        await peer.send(_iq_result(iq, _EMPTY_METADATA.replace("/></query>", "/>" + " " * 5000 + "</query>")))

    outcome = await _small_cap_outcome(xmpp_server, send)
    assert outcome == (
        (
            503,
            "get metadata: the connection was closed: the XMPP server sent a stanza over the 4096-byte limit (the "
            "max_message_bytes option)",
        ),
        [S.DISCONNECTED],
        ["text=a stanza over the 4096-byte limit policy-violation=None"],
        [],
    )


async def test_whitespace_between_stanzas_does_not_count_towards_the_limit(xmpp_server: XmppServer) -> None:
    """Whitespace keepalives are consumed, not held: ten times the limit of them between stanzas end nothing."""

    async def send(peer: XmppPeer, iq: etree._Element) -> None:
        for _ in range(10):
            await peer.send(" " * 4096)
        await peer.reply(iq, _EMPTY_METADATA)
        await peer.send("<iq type='get' id='after'><ping xmlns='urn:xmpp:ping'/></iq>")  # answered: still going

    outcome = await _small_cap_outcome(xmpp_server, send)
    assert outcome == ((200, ""), [], ["{jabber:client}iq"], [])


async def test_a_billion_laughs_dtd_before_the_stream_header_is_a_prompt_connect_failure(
    xmpp_server: XmppServer,
) -> None:
    """aioxmpp refuses any DTD (its SAX lexical handler raises at ``startDTD``: nothing is expanded); during the login
    the refusal ends connect() at once with a ServerError (500), as a DTD does on ws://, not by connect_timeout,
    and leaves nothing behind on the loop."""

    async def script(peer: XmppPeer) -> None:
        await peer.login(last_header_prefix=dtd)
        await peer.serve()

    ca_file = str(xmpp_server.ca_file)
    dtd = ""  # a good login first, so the memory figure below is not the cost of a first connection
    async with xmpp_peer(xmpp_server, script) as (url, _), rostra.Client(url, ca_file=ca_file) as sdk:
        await sdk.connect("alice", "secret")
    dtd = BILLION_LAUGHS
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with loop_errors() as errors:
        async with (
            xmpp_peer(xmpp_server, script) as (url, _),
            rostra.Client(url, ca_file=ca_file, connect_timeout=4 * GUARD) as sdk,
        ):
            seen = statuses(sdk)
            with anyio.fail_after(GUARD), pytest.raises(rostra.RostraError) as caught:  # well before connect_timeout
                await sdk.connect("alice", "secret")
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert (type(caught.value).__name__, caught.value.status_code, seen, errors, grown_mib < 32) == (
        "ServerError",
        500,
        [S.CONNECTING, S.CONNECTIONFAILED],
        [],
        True,
    )
    assert "restricted-xml" in caught.value.message
