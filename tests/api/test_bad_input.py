"""The bad-input table: each refused input gives the same status code on every server kind, and the stored
profile is unchanged after each refusal."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import pytest
from PIL import Image

import rostra

pytestmark = pytest.mark.anyio

BASELINE = {"name": "Base", "status": "steady", "mobile_number": "+14155552671", "email": "base@example.com"}


def png_bytes(size: int) -> bytes:
    out = io.BytesIO()
    Image.effect_noise((size, size), 64).convert("RGB").save(out, format="PNG")
    return out.getvalue()


BAD_IDENTIFIERS = {
    "space": "al ice",
    "at-sign": "alice@localhost",
    "empty": "",
    "2000-chars": "a" * 2000,
    "65-chars": "a" * 65,
    "non-ascii": "zoë",
    "dash": "al-ice",
}

BAD_JIDS = {
    "empty": "",
    "no-at": "alice",
    "no-local": "@localhost",
    "no-domain": "alice@",
    "two-ats": "a@b@localhost",
    "space": "al ice@localhost",
    "bad-domain": "alice@local_host",
}

BAD_PROFILE = {
    "name-31-chars": ({"name": "x" * 31}, 400),
    "name-control-char": ({"name": "a\nb"}, 400),
    "name-one-space": ({"name": " "}, 400),
    "name-zero-width-space": ({"name": "\u200b"}, 400),
    "name-rtl-override": ({"name": "abc\u202egnp.exe"}, 400),
    "status-rtl-isolate": ({"status": "\u2067busy\u2069"}, 400),
    "status-140-chars": ({"status": "s" * 140}, 400),
    "phone-no-country": ({"mobile_number": "4155552671"}, 400),
    "phone-letters": ({"mobile_number": "call me"}, 400),
    "phone-too-short": ({"mobile_number": "+1 555"}, 400),
    "phone-bad-country": ({"mobile_number": "+999 123456789"}, 400),
    "email-no-at": ({"email": "alice.example.com"}, 400),
    "email-no-domain": ({"email": "alice@"}, 400),
    "email-space": ({"email": "al ice@example.com"}, 400),
    "email-two-ats": ({"email": "a@@example.com"}, 400),
    "image-not-an-image": ({"image": b"hello, I am a text file\n"}, 400),
    "image-empty-bytes": ({"image": b""}, 400),
    "image-ftp-url": ({"image": "ftp://example.com/a.png"}, 400),
}


@pytest.fixture
async def alice(make_user):
    user = await make_user()
    await user.sdk.set_user_profile(**BASELINE)
    return user


async def stored_profile(user) -> dict[str, object]:
    return (await user.sdk.get_user_profile(user.jid)).to_dict()


@pytest.mark.parametrize("identifier", BAD_IDENTIFIERS.values(), ids=BAD_IDENTIFIERS.keys())
async def test_register_refuses_a_bad_identifier_with_400(make_client, identifier: str) -> None:
    sdk = await make_client()
    with pytest.raises(rostra.InvalidInputError) as caught:
        await sdk.register(identifier)
    assert caught.value.status_code == 400


JID_CALLS = ["get_user_profile", "get_last_seen", "add_contact", "remove_contact", "accept_contact", "decline_contact"]
CONTACT_CALLS = ["add_contact", "remove_contact", "accept_contact", "decline_contact"]


@pytest.mark.parametrize("call", JID_CALLS)
@pytest.mark.parametrize("jid", BAD_JIDS.values(), ids=BAD_JIDS.keys())
async def test_a_malformed_jid_is_refused_with_400(alice, call: str, jid: str) -> None:
    with pytest.raises(rostra.InvalidInputError) as caught:
        await getattr(alice.sdk, call)(jid)
    assert caught.value.status_code == 400


@pytest.mark.parametrize("call", CONTACT_CALLS)
async def test_our_own_jid_is_refused_by_every_contact_operation_with_400(alice, call: str) -> None:
    own = (await alice.sdk.get_current_user_jid()).user_jid
    with pytest.raises(rostra.InvalidInputError) as caught:
        await getattr(alice.sdk, call)(own.upper())
    assert (caught.value.status_code, (await alice.sdk.get_contacts()).data) == (400, [])


@pytest.mark.parametrize(("call", "status_code"), [(c, 200 if c == "remove_contact" else 404) for c in CONTACT_CALLS])
async def test_a_user_of_an_unreachable_server_is_404_except_removing_them_which_is_a_no_op(
    alice, call: str, status_code: int
) -> None:
    try:
        outcome = (await getattr(alice.sdk, call)("someone@elsewhere.example")).status_code
    except rostra.RostraError as exc:
        outcome = exc.status_code
    assert (outcome, (await alice.sdk.get_contacts()).data) == (status_code, [])


@pytest.mark.parametrize(("fields", "status_code"), BAD_PROFILE.values(), ids=BAD_PROFILE.keys())
async def test_a_bad_profile_field_is_refused_and_the_profile_stays_whole(alice, fields, status_code: int) -> None:
    before = await stored_profile(alice)
    valid_change = {"status": "changed"} if "name" in fields else {"name": "Changed"}
    with pytest.raises(rostra.RostraError) as caught:
        await alice.sdk.set_user_profile(**fields, **valid_change)
    assert (caught.value.status_code, await stored_profile(alice)) == (status_code, before)


async def test_an_empty_image_file_is_refused_and_the_profile_stays_whole(alice, tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    before = await stored_profile(alice)
    with pytest.raises(rostra.InvalidInputError):
        await alice.sdk.set_user_profile(image=str(empty), name="Changed")
    assert await stored_profile(alice) == before


async def test_a_text_file_as_image_is_refused_and_the_profile_stays_whole(alice, tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not a picture\n")
    before = await stored_profile(alice)
    with pytest.raises(rostra.InvalidInputError):
        await alice.sdk.set_user_profile(image=text, name="Changed")
    assert await stored_profile(alice) == before


async def test_an_oversized_image_is_413_and_the_profile_stays_whole(make_user) -> None:
    user = await make_user(image_limits=rostra.ImageLimits(max_bytes=2_000))
    await user.sdk.set_user_profile(**BASELINE)
    before = await stored_profile(user)
    with pytest.raises(rostra.PayloadTooLargeError) as caught:
        await user.sdk.set_user_profile(image=png_bytes(200), name="Changed")
    assert (caught.value.status_code, await stored_profile(user)) == (413, before)


async def test_an_image_that_grows_over_max_bytes_when_re_encoded_is_413_and_the_profile_stays_whole(
    make_user,
) -> None:
    out = io.BytesIO()
    Image.effect_noise((200, 150), 64).convert("RGB").save(out, format="JPEG", progressive=True, optimize=True)
    source = out.getvalue()  # a baseline re-encoding of a progressive, optimized JPEG is a little larger
    user = await make_user(image_limits=rostra.ImageLimits(max_bytes=len(source)))
    await user.sdk.set_user_profile(**BASELINE)
    before = await stored_profile(user)
    with pytest.raises(rostra.PayloadTooLargeError) as caught:
        await user.sdk.set_user_profile(image=source, name="Changed")
    assert (caught.value.status_code, await stored_profile(user)) == (413, before)


async def test_a_png_named_jpg_is_accepted_and_stored_as_png(alice, tmp_path: Path) -> None:
    misnamed = tmp_path / "photo.jpg"
    misnamed.write_bytes(png_bytes(40))
    data = (await alice.sdk.set_user_profile(image=str(misnamed))).data
    assert data.image.endswith(".png") or data.image.startswith("data:image/png;base64,")


VALID_NAMES = {
    "emoji-zwj": "👩‍💻 Zoë",
    "30-emoji": "🦄" * 30,
    "30-chars": "n" * 30,
    "flag-and-skin-tone": "🇫🇷👍🏽",
    "xml-specials": "<b>&amp;'\"",
    "emoji-zwj-ada": "👩‍💻 Ada",
    "rtl-mark": "\u200fשלם",
}


@pytest.mark.parametrize("name", VALID_NAMES.values(), ids=VALID_NAMES.keys())
async def test_a_valid_name_round_trips_exactly(alice, make_user, name: str) -> None:
    await alice.sdk.set_user_profile(name=name)
    reader = await make_user()
    assert (await reader.sdk.get_user_profile(alice.jid)).data.nick_name == name


async def test_refusals_send_nothing_even_for_a_fresh_identifier(make_client) -> None:
    sdk = await make_client()
    identifier = f"u{uuid.uuid4().hex}"
    with pytest.raises(rostra.InvalidInputError):
        await sdk.register(identifier, {"a": 1, "b": 2, "c": 3, "d": 4})
    assert (await sdk.register(identifier)).data.username == identifier
