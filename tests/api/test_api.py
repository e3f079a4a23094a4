"""The whole Profile API, row by row of the issue's table, on every server kind (``server_url``)."""

from __future__ import annotations

import io
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable

import anyio
import pytest
from PIL import Image

import rostra
from rostra import ConnectionStatus as S

pytestmark = pytest.mark.anyio

IMAGE_URL = "https://example.com/avatars/a.png"


def png_bytes(size: int = 64) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), (200, 30, 90)).save(out, format="PNG")
    return out.getvalue()


def empty_profile(jid: str) -> dict[str, object]:
    return {
        "userJid": jid,
        "userId": jid.partition("@")[0],
        "nickName": "",
        "image": "",
        "thumbImage": "",
        "status": "",
        "mobileNumber": "",
        "email": "",
        "isAdminBlocked": False,
        "shareContactDetails": False,
    }


async def next_matching(events: AsyncIterator[rostra.Event], predicate: Callable[[rostra.Event], bool]) -> rostra.Event:
    with anyio.fail_after(5):
        async for event in events:
            if predicate(event):
                return event
    raise AssertionError("the event stream ended")


# -- register -------------------------------------------------------------------------------------------------


async def test_register_returns_the_documented_response(make_client) -> None:
    sdk = await make_client()
    identifier = f"Ab{uuid.uuid4().hex}"
    response = await sdk.register(identifier)
    username = identifier.lower()
    assert response.to_dict() == {
        "statusCode": 200,
        "message": "Success",
        "data": {
            "username": username,
            "password": response.data.password,
            "isProfileUpdated": False,
            "isSandbox": False,
            "userJid": f"{username}@localhost",
        },
    }


async def test_register_makes_a_192_bit_url_safe_password(make_client) -> None:
    sdk = await make_client()
    password = (await sdk.register(f"u{uuid.uuid4().hex}")).data.password
    assert len(password) == 32  # token_urlsafe(24): 24 random bytes


async def test_register_in_trial_mode_marks_the_user_as_sandbox(make_client) -> None:
    sdk = await make_client(trial=True)
    assert (await sdk.register(f"u{uuid.uuid4().hex}")).data.is_sandbox is True


async def test_register_of_an_existing_identifier_without_stored_credentials_is_409(make_client) -> None:
    identifier = f"u{uuid.uuid4().hex}"
    await (await make_client()).register(identifier)
    with pytest.raises(rostra.ConflictError) as caught:
        await (await make_client()).register(identifier.upper())
    assert caught.value.status_code == 409


async def test_register_of_an_identifier_in_the_credential_store_returns_its_credentials(make_client) -> None:
    sdk = await make_client()
    identifier = f"u{uuid.uuid4().hex}"
    first = await sdk.register(identifier)
    again = await sdk.register(identifier)
    assert again.to_dict() == first.to_dict()


async def test_register_again_tells_whether_the_user_has_a_profile(make_client) -> None:
    sdk = await make_client(trial=True)
    identifier = f"u{uuid.uuid4().hex}"
    first = (await sdk.register(identifier)).data
    await sdk.connect(first.username, first.password)
    await sdk.set_user_profile(name="Someone")
    await sdk.logout()
    again = (await sdk.register(identifier)).data
    assert (again.is_profile_updated, again.is_sandbox, again.password) == (True, True, first.password)


async def test_metadata_given_to_register_is_readable_after_connect(make_client) -> None:
    sdk = await make_client()
    data = (await sdk.register(f"u{uuid.uuid4().hex}", {"plan": "gold", "beta": True, "seats": 3})).data
    await sdk.connect(data.username, data.password)
    assert (await sdk.get_metadata()).to_dict() == {
        "statusCode": 200,
        "message": "Success",
        "data": {"plan": "gold", "beta": True, "seats": 3},
    }


async def test_metadata_may_not_use_the_reserved_sandbox_key(make_client) -> None:
    sdk = await make_client()
    with pytest.raises(rostra.InvalidInputError):
        await sdk.register(f"u{uuid.uuid4().hex}", {"rostra.sandbox": True})


# -- connect / logout -----------------------------------------------------------------------------------------


async def test_connect_returns_login_success_and_announces_connecting_then_connected(make_user) -> None:
    user = await make_user(connect=False)
    seen: list[S] = []
    user.sdk.add_connection_listener(lambda event: seen.append(event.status))
    response = await user.sdk.connect(user.username, user.password)
    assert (response.to_dict(), seen) == ({"statusCode": 200, "message": "Login Success"}, [S.CONNECTING, S.CONNECTED])


async def test_connect_with_a_wrong_password_raises_401_and_announces_authfail(make_user) -> None:
    user = await make_user(connect=False)
    seen: list[S] = []
    user.sdk.add_connection_listener(lambda event: seen.append(event.status))
    with pytest.raises(rostra.AuthenticationError) as caught:
        await user.sdk.connect(user.username, user.password + "x")
    assert (caught.value.status_code, seen, user.sdk.state) == (401, [S.CONNECTING, S.AUTHFAIL], rostra.State.IDLE)


async def test_two_concurrent_connects_share_one_attempt(make_user) -> None:
    user = await make_user(connect=False)
    seen: list[S] = []
    results: list[dict[str, object]] = []
    user.sdk.add_connection_listener(lambda event: seen.append(event.status))

    async def connect() -> None:
        results.append((await user.sdk.connect(user.username, user.password)).to_dict())

    async with anyio.create_task_group() as group:
        group.start_soon(connect)
        group.start_soon(connect)
    assert (results, seen) == ([{"statusCode": 200, "message": "Login Success"}] * 2, [S.CONNECTING, S.CONNECTED])


async def test_connect_while_connected_is_409(make_user) -> None:
    user = await make_user()
    with pytest.raises(rostra.AlreadyConnectedError) as caught:
        await user.sdk.connect(user.username, user.password)
    assert caught.value.status_code == 409


async def test_logout_returns_logout_success_and_announces_logout(make_user) -> None:
    user = await make_user()
    seen: list[S] = []
    user.sdk.add_connection_listener(lambda event: seen.append(event.status))
    response = await user.sdk.logout()
    assert (response.to_dict(), seen) == ({"statusCode": 200, "message": "Logout Success"}, [S.LOGOUT])


async def test_calls_after_logout_are_401(make_user) -> None:
    user = await make_user()
    await user.sdk.logout()
    with pytest.raises(rostra.NotConnectedError) as caught:
        await user.sdk.get_user_profile(user.jid)
    assert caught.value.status_code == 401


async def test_calls_after_aclose_say_the_client_is_closed(make_user) -> None:
    user = await make_user()
    await user.sdk.aclose()
    with pytest.raises(rostra.ClientClosedError):
        await user.sdk.connect(user.username, user.password)


async def test_a_coroutine_connection_listener_runs(make_user) -> None:
    user = await make_user(connect=False)
    done = anyio.Event()

    async def listener(event: rostra.ConnectionEvent) -> None:
        if event.status is S.CONNECTED:
            done.set()

    user.sdk.add_connection_listener(listener)
    await user.sdk.connect(user.username, user.password)
    with anyio.fail_after(5):
        await done.wait()


async def test_a_removed_listener_is_not_called(make_user) -> None:
    user = await make_user(connect=False)
    seen: list[S] = []
    remove = user.sdk.add_connection_listener(lambda event: seen.append(event.status))
    remove()
    await user.sdk.connect(user.username, user.password)
    assert seen == []


async def test_a_listener_that_raises_does_not_break_the_client(make_user) -> None:
    user = await make_user(connect=False)

    def broken(event: rostra.ConnectionEvent) -> None:
        raise RuntimeError("listener bug")

    user.sdk.add_connection_listener(broken)
    assert (await user.sdk.connect(user.username, user.password)).message == "Login Success"


# -- profiles -------------------------------------------------------------------------------------------------


async def test_a_user_without_a_profile_reads_as_empty_strings(make_user) -> None:
    alice, bob = await make_user(), await make_user()
    response = await alice.sdk.get_user_profile(bob.jid)
    assert response.to_dict() == {"statusCode": 200, "message": "Success", "data": empty_profile(bob.jid)}


async def test_set_user_profile_returns_the_stored_profile(make_user) -> None:
    alice = await make_user()
    response = await alice.sdk.set_user_profile(
        name="Alice 👩‍💻", image=IMAGE_URL, status="Hi <&>", mobile_number="+1 415 555 2671", email="alice@Example.COM"
    )
    assert response.to_dict() == {
        "statusCode": 200,
        "message": "Success",
        "data": {
            **empty_profile(alice.jid),
            "nickName": "Alice 👩‍💻",
            "image": IMAGE_URL,
            "thumbImage": IMAGE_URL,
            "status": "Hi <&>",
            "mobileNumber": "+14155552671",
            "email": "alice@example.com",
        },
    }


async def test_another_user_reads_the_stored_profile(make_user) -> None:
    alice, bob = await make_user(), await make_user()
    stored = (await alice.sdk.set_user_profile(name="Alice", status="busy")).data
    assert (await bob.sdk.get_user_profile(alice.jid)).data == stored


async def test_an_omitted_field_keeps_its_value(make_user) -> None:
    alice = await make_user()
    await alice.sdk.set_user_profile(name="Alice", status="busy")
    data = (await alice.sdk.set_user_profile(status="free")).data
    assert (data.nick_name, data.status) == ("Alice", "free")


async def test_an_empty_string_clears_a_field(make_user) -> None:
    alice = await make_user()
    await alice.sdk.set_user_profile(name="Alice", image=IMAGE_URL)
    data = (await alice.sdk.set_user_profile(image="")).data
    assert (data.nick_name, data.image, data.thumb_image) == ("Alice", "", "")


async def test_an_image_file_is_stored_with_a_separate_thumbnail(make_user) -> None:
    alice = await make_user()
    data = (await alice.sdk.set_user_profile(image=png_bytes(300))).data
    assert (data.image != "", data.thumb_image != "", data.image != data.thumb_image) == (True, True, True)


async def test_profile_listeners_receive_the_fetched_profile(make_user) -> None:
    alice, bob = await make_user(), await make_user()
    received: list[rostra.ProfileEvent] = []
    alice.sdk.add_user_profile_listener(received.append)
    response = await alice.sdk.get_user_profile(bob.jid)
    assert received == [rostra.ProfileEvent(data=response.data)]


async def test_own_profile_listeners_fire_once_on_set(make_user) -> None:
    alice, bob = await make_user(), await make_user()
    received: list[rostra.ProfileEvent] = []
    alice.sdk.add_user_profile_listener(received.append)
    stored = (await alice.sdk.set_user_profile(name="Once")).data
    await alice.sdk.get_user_profile(bob.jid)  # a round trip, so that an echo of our own change would have arrived
    assert [event.data for event in received if event.data.user_jid == alice.jid] == [stored]


async def test_a_contact_receives_the_new_profile_as_an_event(make_user, make_friends) -> None:
    alice, bob = await make_user(), await make_user()
    await make_friends(alice, bob)
    async with bob.sdk.events() as bob_events:
        stored = (await alice.sdk.set_user_profile(name="Alice", status="new")).data
        event = await next_matching(
            bob_events, lambda e: isinstance(e, rostra.ProfileEvent) and e.data.user_jid == alice.jid
        )
    assert event == rostra.ProfileEvent(data=stored)


# -- last seen ------------------------------------------------------------------------------------------------


async def test_last_seen_of_a_contact_online_now_is_zero(make_user, make_friends) -> None:
    alice, bob = await make_user(), await make_user()
    await make_friends(alice, bob)
    response = await alice.sdk.get_last_seen(bob.jid)
    assert response.to_dict() == {"statusCode": 200, "message": "Success", "data": {"userJid": bob.jid, "seconds": 0}}


async def test_last_seen_of_a_contact_after_logout_is_whole_seconds(make_user, make_friends) -> None:
    alice, bob = await make_user(), await make_user()
    await make_friends(alice, bob)
    logged_out = time.monotonic()
    await bob.sdk.logout()
    await anyio.sleep(1.1)  # the server's whole seconds since the logout are then at least 1
    seconds = (await alice.sdk.get_last_seen(bob.jid)).data.seconds
    elapsed = time.monotonic() - logged_out
    assert type(seconds) is int
    assert 1 <= seconds <= math.ceil(elapsed) + 1  # the upper bound only catches a value that is no elapsed time


async def test_last_seen_of_oneself_is_zero(make_user) -> None:
    alice = await make_user()
    assert (await alice.sdk.get_last_seen(alice.jid)).data.seconds == 0


async def test_last_seen_of_a_non_contact_is_403(make_user) -> None:
    alice, bob = await make_user(), await make_user()
    with pytest.raises(rostra.ForbiddenError) as caught:
        await alice.sdk.get_last_seen(bob.jid)
    assert caught.value.status_code == 403


# -- current JID ----------------------------------------------------------------------------------------------


async def test_get_current_user_jid_returns_the_bare_jid(make_user) -> None:
    alice = await make_user()
    assert (await alice.sdk.get_current_user_jid()).to_dict() == {
        "statusCode": 200,
        "message": "Success",
        "userJid": alice.jid,
    }


async def test_get_current_user_jid_when_not_connected_is_401(make_user) -> None:
    alice = await make_user(connect=False)
    with pytest.raises(rostra.NotConnectedError) as caught:
        await alice.sdk.get_current_user_jid()
    assert caught.value.status_code == 401


# -- contacts -------------------------------------------------------------------------------------------------


async def test_users_who_add_each_other_are_friends(make_user, make_friends) -> None:
    alice, bob = await make_user(), await make_user()
    await make_friends(alice, bob)
    assert (await alice.sdk.get_contacts()).to_dict() == {
        "statusCode": 200,
        "message": "Success",
        "data": [{"userJid": bob.jid, "subscription": "both", "isFriend": True}],
    }


async def test_a_contact_request_listener_returning_true_accepts(make_user) -> None:
    alice, bob = await make_user(), await make_user()
    bob.sdk.add_contact_request_listener(lambda event: event.from_user_jid == alice.jid)
    async with alice.sdk.events() as alice_events:
        await alice.sdk.add_contact(bob.jid)
        event = await next_matching(alice_events, lambda e: isinstance(e, rostra.ContactEvent) and e.data.is_friend)
    assert event == rostra.ContactEvent(data=rostra.Contact(user_jid=bob.jid, subscription="both", is_friend=True))


async def test_a_contact_request_reaches_the_listener(make_user) -> None:
    alice, bob = await make_user(), await make_user()
    requests: list[rostra.ContactRequestEvent] = []
    async with bob.sdk.events() as bob_events:
        bob.sdk.add_contact_request_listener(requests.append)
        await alice.sdk.add_contact(bob.jid)
        await next_matching(bob_events, lambda e: isinstance(e, rostra.ContactRequestEvent))
    assert requests == [rostra.ContactRequestEvent(from_user_jid=alice.jid)]


async def test_accept_contact_makes_friends(make_user) -> None:
    alice, bob = await make_user(), await make_user()
    async with bob.sdk.events() as bob_events:
        await alice.sdk.add_contact(bob.jid)
        await next_matching(bob_events, lambda e: isinstance(e, rostra.ContactRequestEvent))
        await bob.sdk.accept_contact(alice.jid)
        await next_matching(bob_events, lambda e: isinstance(e, rostra.ContactEvent) and e.data.is_friend)
    assert [c.subscription for c in (await bob.sdk.get_contacts()).data] == ["both"]


async def test_a_declined_request_leaves_no_friendship(make_user) -> None:
    alice, bob = await make_user(), await make_user()
    async with bob.sdk.events() as bob_events:
        await alice.sdk.add_contact(bob.jid)
        await next_matching(bob_events, lambda e: isinstance(e, rostra.ContactRequestEvent))
    await bob.sdk.decline_contact(alice.jid)
    await bob.sdk.get_contacts()
    assert [c.is_friend for c in (await alice.sdk.get_contacts()).data] == [False]


async def test_remove_contact_removes_it_from_the_contacts(make_user, make_friends) -> None:
    alice, bob = await make_user(), await make_user()
    await make_friends(alice, bob)
    await alice.sdk.remove_contact(bob.jid)
    assert (await alice.sdk.get_contacts()).data == []


async def test_adding_yourself_is_400(make_user) -> None:
    alice = await make_user()
    with pytest.raises(rostra.InvalidInputError):
        await alice.sdk.add_contact(alice.jid)


@pytest.mark.parametrize("call", ["get_user_profile", "get_last_seen", "add_contact"])
async def test_a_user_on_another_domain_is_404(make_user, call: str) -> None:
    alice = await make_user()
    with pytest.raises(rostra.NotFoundError) as caught:
        await getattr(alice.sdk, call)("someone@elsewhere.example")
    assert caught.value.status_code == 404
