"""Who reads and who changes a profile: mobile number and email for contacts only unless the owner shares them,
and no user can change another user's profile or metadata (the server refuses the raw attempt).

A "contact" is a user who receives the owner's presence (subscription ``to``/``both`` on the reader's side).
Runs on memory://, xmpp:// and ws://, against the suite's server (Prosody; ejabberd with ROSTRA_TEST_SERVER).
"""

from __future__ import annotations

import pytest
from _security_helpers import User, befriend, raw_iq

import rostra
from _prosody import selected_server
from rostra._schemas import ProfileFields
from rostra_xmpp_common import mapping

pytestmark = pytest.mark.anyio

PHONE, EMAIL = "+14155552671", "ada@example.org"


def public_part(profile: rostra.Profile) -> dict[str, object]:
    return {**profile.to_dict(), "mobileNumber": "", "email": ""}


@pytest.fixture
async def trio(make_user) -> tuple[User, User, User]:  # type: ignore[no-untyped-def]
    """The owner (with a full profile), a contact of hers, and a stranger."""
    owner, contact, stranger = await make_user(), await make_user(), await make_user()
    await befriend(owner, contact)
    await owner.sdk.set_user_profile(
        name="Ada", status="here", image="https://example.org/a.png", mobile_number=PHONE, email=EMAIL
    )
    return owner, contact, stranger


async def test_a_user_who_is_not_a_contact_reads_mobile_number_and_email_as_empty(trio) -> None:  # type: ignore[no-untyped-def]
    owner, _, stranger = trio
    read = (await stranger.sdk.get_user_profile(owner.jid)).data
    assert (read.nick_name, read.status, read.image, read.thumb_image, read.mobile_number, read.email) == (
        "Ada",
        "here",
        "https://example.org/a.png",
        "https://example.org/a.png",
        "",
        "",
    )


async def test_a_contact_reads_mobile_number_and_email_exactly(trio) -> None:  # type: ignore[no-untyped-def]
    owner, contact, _ = trio
    read = (await contact.sdk.get_user_profile(owner.jid)).data
    assert (read.nick_name, read.mobile_number, read.email) == ("Ada", PHONE, EMAIL)


async def test_the_owner_reads_her_mobile_number_and_email(trio) -> None:  # type: ignore[no-untyped-def]
    owner, _, _ = trio
    read = (await owner.sdk.get_user_profile(owner.jid)).data
    assert (read.nick_name, read.mobile_number, read.email) == ("Ada", PHONE, EMAIL)


async def test_after_opting_in_everyone_reads_them_and_after_opting_out_again_not(trio) -> None:  # type: ignore[no-untyped-def]
    owner, contact, stranger = trio
    seen = []
    await owner.sdk.set_user_profile(share_contact_details=True)
    seen.append((await stranger.sdk.get_user_profile(owner.jid)).data)
    await owner.sdk.set_user_profile(status="still shared")  # UNSET keeps the choice
    seen.append((await stranger.sdk.get_user_profile(owner.jid)).data)
    await owner.sdk.set_user_profile(share_contact_details=False)
    seen.append((await stranger.sdk.get_user_profile(owner.jid)).data)
    seen.append((await contact.sdk.get_user_profile(owner.jid)).data)
    seen.append((await owner.sdk.get_user_profile(owner.jid)).data)
    assert [(p.status, p.mobile_number, p.email, p.share_contact_details) for p in seen] == [
        ("here", PHONE, EMAIL, True),
        ("still shared", PHONE, EMAIL, True),
        ("still shared", "", "", False),
        ("still shared", PHONE, EMAIL, False),
        ("still shared", PHONE, EMAIL, False),  # the owner reads her choice back
    ]


async def test_a_removed_contact_reads_them_as_empty_again(trio) -> None:  # type: ignore[no-untyped-def]
    owner, contact, _ = trio
    await owner.sdk.remove_contact(contact.jid)
    read = (await contact.sdk.get_user_profile(owner.jid)).data
    assert (read.nick_name, read.mobile_number, read.email) == ("Ada", "", "")


async def test_the_set_response_and_the_contacts_event_carry_them(make_user) -> None:  # type: ignore[no-untyped-def]
    owner, contact = await make_user(), await make_user()
    await befriend(owner, contact)
    async with contact.sdk.events() as events:
        stored = (await owner.sdk.set_user_profile(name="Ada", mobile_number=PHONE, email=EMAIL)).data
        async for event in events:
            if isinstance(event, rostra.ProfileEvent) and event.data.user_jid == owner.jid:
                break
    assert ((stored.mobile_number, stored.email), event.data) == ((PHONE, EMAIL), stored)


@pytest.mark.parametrize("value", [None, 1, "yes"])
async def test_share_contact_details_must_be_a_bool(make_user, value: object) -> None:  # type: ignore[no-untyped-def]
    owner = await make_user()
    with pytest.raises(rostra.InvalidInputError) as refused:
        await owner.sdk.set_user_profile(share_contact_details=value)  # type: ignore[arg-type]
    assert refused.value.message == f"share_contact_details must be True or False, not {value!r}"


# -- another user's profile and metadata, at the protocol level ---------------------------------------------------

#: What each server answers a raw write into another user's PEP node or private storage (measured).
REFUSALS = {
    "prosody": {"publish": "forbidden", "publish_public": "forbidden", "private": "service-unavailable"},
    "ejabberd": {"publish": "forbidden", "publish_public": "forbidden", "private": "forbidden"},
}


async def test_a_raw_write_into_another_users_profile_and_metadata_is_refused(make_xmpp_user) -> None:  # type: ignore[no-untyped-def]
    # (memory:// has no protocol below the SDK, whose API has no call that names another user's data.)
    owner, other = await make_xmpp_user(), await make_xmpp_user()
    await owner.sdk.set_user_profile(name="Ada", mobile_number=PHONE, email=EMAIL)
    before = ((await owner.sdk.get_user_profile(owner.jid)).data, (await owner.sdk.get_metadata()).data)
    evil = ProfileFields(nick_name="evil", mobile_number="+14155550000", share_contact_details=True)
    answers = {
        "publish": await raw_iq(
            other.sdk, "set", mapping.build_profile_publish(evil, with_options=False), to=owner.jid
        ),
        "publish_public": await raw_iq(
            other.sdk,
            "set",
            mapping.build_profile_publish(evil, node=mapping.PUBLIC_PROFILE_NODE, with_options=False),
            to=owner.jid,
        ),
        "private": await raw_iq(other.sdk, "set", mapping.build_private_set({"plan": "evil"}), to=owner.jid),
    }
    after = ((await owner.sdk.get_user_profile(owner.jid)).data, (await owner.sdk.get_metadata()).data)
    stranger_view = (await other.sdk.get_user_profile(owner.jid)).data
    assert answers == REFUSALS[selected_server()]
    assert after == before
    assert (stranger_view.nick_name, stranger_view.mobile_number) == ("Ada", "")


async def test_a_failed_publish_of_the_whole_profile_leaves_both_nodes_as_they_were(
    make_xmpp_user, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    owner, stranger = await make_xmpp_user(), await make_xmpp_user()
    await owner.sdk.set_user_profile(name="Ada", mobile_number=PHONE, email=EMAIL, share_contact_details=True)
    session = owner.sdk._session
    publish = session._publish  # type: ignore[union-attr]
    published: list[str] = []

    async def second_fails(node: str, fields: ProfileFields) -> None:
        published.append(node)
        if node == mapping.PROFILE_NODE:
            raise rostra.ServerError("set profile failed (internal-server-error): the test's failure")
        await publish(node, fields)

    monkeypatch.setattr(session, "_publish", second_fails)
    with pytest.raises(rostra.ServerError):
        await owner.sdk.set_user_profile(name="Eve", share_contact_details=False)
    monkeypatch.undo()
    own, seen = (
        (await owner.sdk.get_user_profile(owner.jid)).data,
        (await stranger.sdk.get_user_profile(owner.jid)).data,
    )
    # The public copy was written (without the number), then restored from the whole profile the server kept.
    assert published == [mapping.PUBLIC_PROFILE_NODE, mapping.PROFILE_NODE, mapping.PUBLIC_PROFILE_NODE]
    assert [(p.nick_name, p.mobile_number, p.email) for p in (own, seen)] == [("Ada", PHONE, EMAIL)] * 2
