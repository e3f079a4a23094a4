"""Client behaviours that need the memory server's test hooks: time, failures, timeouts, stores, streams."""

from __future__ import annotations

import io
import os
import stat
import uuid
from pathlib import Path

import anyio
import pytest
from PIL import Image

import rostra
from rostra import ConnectionStatus as S
from rostra._listeners import EventStream
from rostra.memory import get_server

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def url() -> str:
    return f"memory://core-{uuid.uuid4().hex}"


async def registered(sdk: rostra.Client) -> rostra.RegisterData:
    return (await sdk.register(f"u{uuid.uuid4().hex}")).data


def png_bytes(size: int) -> bytes:
    out = io.BytesIO()
    Image.effect_noise((size, size), 64).convert("RGB").save(out, format="PNG")
    return out.getvalue()


async def test_last_seen_counts_whole_seconds_since_logout(url: str) -> None:
    server = get_server(url)
    now = [1000.0]
    server.clock = lambda: now[0]
    async with rostra.Client(url) as a, rostra.Client(url) as b:
        alice, bob = await registered(a), await registered(b)
        await a.connect(alice.username, alice.password)
        await b.connect(bob.username, bob.password)
        await a.add_contact(bob.user_jid)
        await b.add_contact(alice.user_jid)
        await b.logout()
        now[0] += 42.9
        assert (await a.get_last_seen(bob.user_jid)).data.seconds == 42


async def test_a_stalled_request_is_408_and_the_session_stays_usable(url: str) -> None:
    server = get_server(url)
    async with rostra.Client(url, request_timeout=0.05) as sdk:
        me = await registered(sdk)
        await sdk.connect(me.username, me.password)
        server.stalled.add("get_profile")
        with pytest.raises(rostra.RequestTimeoutError) as caught:
            await sdk.get_user_profile(me.user_jid)
        server.stalled.clear()
        assert (caught.value.status_code, (await sdk.get_user_profile(me.user_jid)).status_code) == (408, 200)


async def test_a_stalled_connect_is_408_and_announces_connectionfailed(url: str) -> None:
    server = get_server(url)
    async with rostra.Client(url, connect_timeout=0.05) as sdk:
        me = await registered(sdk)
        seen: list[S] = []
        sdk.add_connection_listener(lambda event: seen.append(event.status))
        server.stalled.add("connect")
        with pytest.raises(rostra.RequestTimeoutError):
            await sdk.connect(me.username, me.password)
        assert (seen, sdk.state) == ([S.CONNECTING, S.CONNECTIONFAILED], rostra.State.IDLE)


async def test_an_unreachable_server_is_503_and_announces_connectionfailed(url: str) -> None:
    server = get_server(url)
    async with rostra.Client(url) as sdk:
        me = await registered(sdk)
        seen: list[S] = []
        sdk.add_connection_listener(lambda event: seen.append(event.status))
        server.reachable = False
        with pytest.raises(rostra.UnreachableError) as caught:
            await sdk.connect(me.username, me.password)
        assert (caught.value.status_code, seen) == (503, [S.CONNECTING, S.CONNECTIONFAILED])


async def test_a_lost_connection_announces_disconnected_when_reconnect_is_off(url: str) -> None:
    server = get_server(url)
    async with rostra.Client(url, reconnect=False) as sdk:
        me = await registered(sdk)
        await sdk.connect(me.username, me.password)
        seen: list[S] = []
        sdk.add_connection_listener(lambda event: seen.append(event.status))
        server.kick(me.username)
        assert (seen, sdk.state) == ([S.DISCONNECTED], rostra.State.IDLE)


async def test_logout_during_connect_ends_the_attempt(url: str) -> None:
    server = get_server(url)
    async with rostra.Client(url) as sdk:
        me = await registered(sdk)
        seen: list[S] = []
        sdk.add_connection_listener(lambda event: seen.append(event.status))
        server.stalled.add("connect")
        errors: list[rostra.RostraError] = []

        async def connect() -> None:
            try:
                await sdk.connect(me.username, me.password)
            except rostra.RostraError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as group:
            group.start_soon(connect)
            await anyio.wait_all_tasks_blocked()
            await sdk.logout()
        assert ([type(e) for e in errors], seen) == ([rostra.NotConnectedError], [S.CONNECTING, S.LOGOUT])


async def test_connect_with_other_credentials_while_connecting_is_409(url: str) -> None:
    server = get_server(url)
    async with rostra.Client(url) as sdk:
        me = await registered(sdk)
        server.stalled.add("connect")
        async with anyio.create_task_group() as group:
            group.start_soon(sdk.connect, me.username, me.password)
            await anyio.wait_all_tasks_blocked()
            with pytest.raises(rostra.AlreadyConnectedError):
                await sdk.connect("someone", "else")
            group.cancel_scope.cancel()


async def test_without_an_upload_service_images_are_stored_inline(url: str) -> None:
    async with rostra.Client(url + "?upload=0") as sdk:
        me = await registered(sdk)
        await sdk.connect(me.username, me.password)
        data = (await sdk.set_user_profile(image=png_bytes(32))).data
        assert (data.image[:22], data.thumb_image[:22]) == ("data:image/png;base64,", "data:image/png;base64,")


async def test_an_image_over_the_inline_limit_is_413_without_an_upload_service(url: str) -> None:
    limits = rostra.ImageLimits(max_inline_bytes=1_000)
    async with rostra.Client(url + "?upload=0", image_limits=limits) as sdk:
        me = await registered(sdk)
        await sdk.connect(me.username, me.password)
        with pytest.raises(rostra.PayloadTooLargeError):
            await sdk.set_user_profile(image=png_bytes(64))


async def test_uploaded_images_are_kept_by_the_server(url: str) -> None:
    async with rostra.Client(url) as sdk:
        me = await registered(sdk)
        await sdk.connect(me.username, me.password)
        data = (await sdk.set_user_profile(image=png_bytes(300))).data
        sizes = Image.open(io.BytesIO(get_server(url).uploads[data.thumb_image])).size
        assert (data.image in get_server(url).uploads, max(sizes)) == (True, 128)


async def test_our_change_made_in_another_session_fires_our_listener_once(url: str) -> None:
    async with rostra.Client(url) as first, rostra.Client(url) as second:
        me = await registered(first)
        await first.connect(me.username, me.password)
        await second.connect(me.username, me.password)
        received: list[rostra.ProfileEvent] = []
        first.add_user_profile_listener(received.append)
        stored = (await second.set_user_profile(name="Elsewhere")).data
        assert received == [rostra.ProfileEvent(data=stored)]


async def test_the_event_stream_ends_when_the_client_closes(url: str) -> None:
    async with rostra.Client(url) as sdk:
        me = await registered(sdk)
        async with sdk.events() as events:
            await sdk.connect(me.username, me.password)
            await sdk.aclose()
            statuses = [event.status async for event in events if isinstance(event, rostra.ConnectionEvent)]
    assert statuses == [S.CONNECTING, S.CONNECTED, S.LOGOUT]


async def test_a_full_event_stream_drops_the_oldest_event() -> None:
    stream = EventStream(maxlen=2)
    events = [rostra.ContactRequestEvent(from_user_jid=f"u{i}@localhost") for i in range(3)]
    for event in events:
        stream.push(event)
    stream.close()
    assert ([e async for e in stream.receive], stream.dropped) == (events[1:], 1)


async def test_a_contact_request_to_an_offline_user_is_delivered_at_its_next_login(url: str) -> None:
    async with rostra.Client(url) as a, rostra.Client(url) as b:
        alice, bob = await registered(a), await registered(b)
        await a.connect(alice.username, alice.password)
        await a.add_contact(bob.user_jid)
        requests: list[rostra.ContactRequestEvent] = []
        b.add_contact_request_listener(requests.append)
        await b.connect(bob.username, bob.password)
        assert requests == [rostra.ContactRequestEvent(from_user_jid=alice.user_jid)]


async def test_the_file_store_lets_a_new_client_register_the_same_identifier(url: str, tmp_path: Path) -> None:
    store_path = tmp_path / "creds" / "store.json"
    identifier = f"u{uuid.uuid4().hex}"
    async with rostra.Client(url, credential_store=rostra.FileCredentialStore(store_path)) as sdk:
        first = (await sdk.register(identifier)).data
    async with rostra.Client(url, credential_store=rostra.FileCredentialStore(store_path)) as sdk:
        again = (await sdk.register(identifier)).data
    assert again.password == first.password


def test_the_file_store_is_private_to_its_owner(tmp_path: Path) -> None:
    store_path = tmp_path / "creds" / "store.json"
    store = rostra.FileCredentialStore(store_path)
    store.put("memory://", rostra.Credentials(username="a", password="secret", user_jid="a@localhost"))
    modes = (stat.S_IMODE(os.stat(store_path).st_mode), stat.S_IMODE(os.stat(store_path.parent).st_mode))
    assert modes == (0o600, 0o700)


def test_the_file_store_forgets_deleted_credentials(tmp_path: Path) -> None:
    store = rostra.FileCredentialStore(tmp_path / "store.json")
    store.put("memory://", rostra.Credentials(username="a", password="secret", user_jid="a@localhost"))
    store.delete("memory://", "a")
    assert store.get("memory://", "a") is None


def test_credentials_hide_the_password_in_their_repr() -> None:
    creds = rostra.Credentials(username="a", password="hunter2", user_jid="a@localhost")
    assert "hunter2" not in repr(creds)


def test_the_memory_server_keeps_no_plain_password() -> None:
    server = get_server(f"memory://pw-{uuid.uuid4().hex}")
    server.register("alice", "hunter2")
    assert b"hunter2" not in repr(server).encode()


async def test_an_error_inside_the_client_block_propagates_unwrapped() -> None:
    with pytest.raises(rostra.InvalidInputError) as caught:
        async with rostra.Client(f"memory://{uuid.uuid4().hex}") as sdk:
            await sdk.register("not valid")

    assert type(caught.value) is rostra.InvalidInputError
