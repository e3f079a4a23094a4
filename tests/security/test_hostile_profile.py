"""A profile on the server that Rostra did not write (garbage, corrupt or huge images, odd elements) does not break
``get_user_profile`` or the contacts' sessions.

The owner's own raw session publishes the vCard to both profile nodes (the whole profile and its public copy), as
a client of another make could. Rule (docs/architecture.md, "Profile storage"): every field that can be read is
read exactly; an image that is not an http(s) URL or a base64 PNG/JPEG ``data:`` URI, a tel: that is not E.164, an
email that is not local@domain.tld, and a value element holding elements read ""; name and status are text, kept.
"""

from __future__ import annotations

import base64
from typing import Any

import anyio
import msgspec
import pytest
from _security_helpers import User, befriend, raw_iq
from lxml import etree

import rostra
from _prosody import selected_server
from rostra._schemas import ProfileFields
from rostra_xmpp_common import mapping

pytestmark = pytest.mark.anyio

V = mapping.NS_VCARD4
PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 32).decode()
# A data URI that is a PNG by its bytes, as large as the server stores: 900 KB on Prosody (stanza limit 1 MiB);
# ejabberd 23.01 refuses PEP items over about 250 KB (not-acceptable, payload-too-big), so 240 KB there.
HUGE_BYTES = {"prosody": 900_000, "ejabberd": 240_000}[selected_server()]
HUGE_PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\1" * (HUGE_BYTES * 3 // 4)).decode()
THUMB = f"<photo><parameters><type><text>x-thumbnail</text></type></parameters><uri>{PNG}</uri></photo>"
NUMBER, ADDRESS = "<tel><uri>tel:+14155552671</uri></tel>", "<email><text>ada@example.org</text></email>"


def photo(uri: str) -> str:
    return f"<photo><uri>{uri}</uri></photo>"


#: The properties besides nickname "Ok" and status "fine" -> the fields they read as (the others are "").
CASES: dict[str, tuple[str, dict[str, str]]] = {
    "an image that is not a URI": (photo("not a uri at all") + NUMBER, {"mobile_number": "+14155552671"}),
    "a javascript: image": (photo("javascript:alert(1)"), {}),
    "a data URI with corrupt base64": (photo("data:image/png;base64,iVBOR%%%%w0KGgo=") + THUMB, {"thumb_image": PNG}),
    "a data URI that is no image": (photo("data:image/png;base64," + base64.b64encode(b"hello").decode()), {}),
    "a data URI of another type": (photo("data:text/html;base64,PHNjcmlwdD4="), {}),
    "a huge data URI": (photo(HUGE_PNG), {"image": HUGE_PNG}),
    "an image URL holding a space": (photo("https://example.org/a b.png"), {}),
    "a photo uri with child elements": (
        photo("https://example.org/a.png<b xmlns='urn:x'/>tail") + ADDRESS,
        {"email": "ada@example.org"},
    ),
    "a photo with unexpected children": (
        "<photo><what xmlns='urn:x'><ever/></what><uri>https://example.org/b.png</uri></photo>",
        {"image": "https://example.org/b.png"},
    ),
    "a tel: that is not E.164": ("<tel><uri>tel:555-CALL-NOW</uri></tel>" + ADDRESS, {"email": "ada@example.org"}),
    "a tel without tel:": ("<tel><uri>+14155552671x</uri></tel>", {}),
    "an email that is not one": (
        "<email><text>not an email</text></email>" + NUMBER,
        {"mobile_number": "+14155552671"},
    ),
    "unknown elements": (
        "<bday><date>19700101</date></bday><x xmlns='urn:example:x'><y/></x>" + NUMBER + ADDRESS,
        {"mobile_number": "+14155552671", "email": "ada@example.org"},
    ),
    "many photo elements": (
        photo("https://example.org/1.png") + THUMB + "".join(photo(f"https://example.org/{n}.png") for n in range(200)),
        {"image": "https://example.org/1.png", "thumb_image": PNG},
    ),
}


def vcard(properties: str) -> Any:
    return etree.fromstring(
        f"<vcard xmlns='{V}'><nickname><text>Ok</text></nickname>{properties}<note><text>fine</text></note></vcard>"
    )


async def publish_raw(user: User, properties: str) -> None:
    """The owner's own session publishes the vCard to both of its profile nodes (with their access models)."""
    for node in (mapping.PROFILE_NODE, mapping.PUBLIC_PROFILE_NODE):
        publish = mapping.build_profile_publish(ProfileFields(), node=node)
        item = publish[0][0]
        item.remove(item[0])
        item.append(vcard(properties))
        assert await raw_iq(user.sdk, "set", publish) == "result"


def expected(user: User, fields: dict[str, str]) -> dict[str, object]:
    profile = rostra.Profile.from_fields(user.jid, ProfileFields(nick_name="Ok", status="fine", **fields))
    return dict(msgspec.to_builtins(profile))


@pytest.mark.parametrize("case", list(CASES))
async def test_every_reader_gets_what_can_be_read_and_empty_for_the_rest(make_xmpp_user, case: str) -> None:  # type: ignore[no-untyped-def]
    owner, contact, stranger = await make_xmpp_user(), await make_xmpp_user(), await make_xmpp_user()
    await befriend(owner, contact)
    properties, fields = CASES[case]
    async with contact.sdk.events() as events:
        await publish_raw(owner, properties)
        with anyio.fail_after(5):
            async for event in events:
                if isinstance(event, rostra.ProfileEvent) and event.data.user_jid == owner.jid:
                    break
    readers = [owner, contact, stranger]
    answers = [(await reader.sdk.get_user_profile(owner.jid)).to_dict() for reader in readers]
    want = expected(owner, fields)
    assert answers == [{"statusCode": 200, "message": "Success", "data": want}] * 3
    assert msgspec.to_builtins(event.data) == want
    # The sessions go on: the contact's next call is answered.
    assert (await contact.sdk.get_current_user_jid()).user_jid == contact.jid


async def test_the_owner_can_overwrite_a_broken_profile(make_xmpp_user) -> None:  # type: ignore[no-untyped-def]
    owner = await make_xmpp_user()
    await publish_raw(owner, photo("not a uri") + "<tel><uri>tel:bogus</uri></tel>")
    stored = (await owner.sdk.set_user_profile(status="fixed")).data
    assert (stored.nick_name, stored.status, stored.image, stored.mobile_number) == ("Ok", "fixed", "", "")
