"""Reconnection: a lost session is RECONNECTING, retried with capped, jittered backoff, and restored (CONNECTED),
refused (AUTHFAIL) or ended for good (DISCONNECTED for a conflict; LOGOUT for logout() and aclose()).

The memory:// part drives the state logic fast with the memory server's hooks (``kick``, ``reachable``,
``set_password``, ``stalled``). The server part runs on xmpp:// (asyncio) and ws:// (asyncio, trio) against an
XMPP server of this module's own (Prosody, or ejabberd with ROSTRA_TEST_SERVER=ejabberd), which the tests kill with
SIGKILL and start again on the same ports and data. Every status sequence is asserted exactly, from a connection
listener; every wait is bounded by ``anyio.fail_after`` (a guard against a hang, never a measurement).
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
import pytest

import rostra
import rostra._client
from _cases import Statuses, anyio_backend, case  # noqa: F401 - fixtures
from _prosody import XmppServer, selected_server
from rostra import ConnectionStatus as S
from rostra.memory import get_server
from rostra_xmpp._ejabberd import DURABLE_AFTER, EjabberdNotInstalledError, EjabberdServer
from rostra_xmpp._prosody import ProsodyNotInstalledError, ProsodyServer

pytestmark = pytest.mark.anyio

GUARD = 30  # the bound of every wait that must not hang (generous: the machine is shared)
FAST = {"reconnect_delay": 0.05, "reconnect_max_delay": 0.4}  # retries come quickly in these tests
QUIET = 1.0  # how long a test listens for statuses that must not come (several retries' worth with FAST)
MEMORY = pytest.mark.parametrize(
    "case", [("memory", "asyncio"), ("memory", "trio")], ids=["memory-asyncio", "memory-trio"], indirect=True
)


# -- memory:// ----------------------------------------------------------------------------------------------------


@dataclass
class MemoryEnv:
    url: str
    stack: AsyncExitStack

    @property
    def server(self) -> rostra.memory.MemoryServer:
        return get_server(self.url)

    async def user(self, name: str, **options: object) -> tuple[rostra.Client, rostra.RegisterData]:
        sdk = await self.stack.enter_async_context(rostra.Client(self.url, **{**FAST, **options}))
        data = (await sdk.register(name)).data
        await sdk.connect(data.username, data.password)
        return sdk, data


@pytest.fixture
async def mem() -> AsyncIterator[MemoryEnv]:
    async with AsyncExitStack() as stack:
        yield MemoryEnv(f"memory://reconnect-{uuid.uuid4().hex}", stack)


@MEMORY
async def test_memory_a_lost_session_is_restored_with_the_same_jid_and_503_meanwhile(mem: MemoryEnv) -> None:
    sdk, me = await mem.user("alice")
    seen = Statuses(sdk)
    mem.server.reachable = False
    mem.server.kick(me.username)

    with pytest.raises(rostra.UnreachableError) as caught:
        await sdk.get_user_profile(me.user_jid)
    down = (seen.copy(), sdk.state, caught.value.status_code, type(caught.value), caught.value.local)
    mem.server.reachable = True
    await seen.until([S.RECONNECTING, S.CONNECTED])
    jid = (await sdk.get_current_user_jid()).user_jid

    assert down == ([S.RECONNECTING], rostra.State.RECONNECTING, 503, rostra.ReconnectingError, True)
    assert (seen, sdk.state, jid) == ([S.RECONNECTING, S.CONNECTED], rostra.State.CONNECTED, me.user_jid)


@MEMORY
async def test_memory_the_backoff_doubles_from_reconnect_delay_up_to_its_cap(
    mem: MemoryEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    ceilings: list[float] = []
    enough = anyio.Event()

    def record(ceiling: float) -> float:
        ceilings.append(ceiling)
        if len(ceilings) == 8:
            enough.set()
        return 0.0  # no real wait: the ceilings are what this test is about

    monkeypatch.setattr(rostra._client, "_jitter", record)
    sdk, me = await mem.user("alice", reconnect_delay=0.5, reconnect_max_delay=30.0)
    mem.server.reachable = False
    mem.server.kick(me.username)
    with anyio.fail_after(GUARD):
        await enough.wait()
    await sdk.logout()

    assert ceilings[:8] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_the_jitter_is_uniform_between_zero_and_the_ceiling() -> None:
    waits = [rostra._client._jitter(2.0) for _ in range(2000)]
    assert (min(waits) >= 0.0, max(waits) <= 2.0, min(waits) < 0.5, max(waits) > 1.5) == (True, True, True, True)


@MEMORY
async def test_memory_a_password_that_stopped_working_ends_with_authfail_and_no_retry(mem: MemoryEnv) -> None:
    sdk, me = await mem.user("alice")
    seen = Statuses(sdk)
    mem.server.set_password(me.username, "another-password-entirely")
    mem.server.kick(me.username)
    await seen.until([S.RECONNECTING, S.AUTHFAIL])
    await anyio.sleep(QUIET)

    with pytest.raises(rostra.NotConnectedError):
        await sdk.get_contacts()
    assert (seen, sdk.state, list(mem.server.sessions_of(me.username))) == (
        [S.RECONNECTING, S.AUTHFAIL],
        rostra.State.IDLE,
        [],
    )


@MEMORY
async def test_memory_a_conflict_ends_with_disconnected_and_no_retry(mem: MemoryEnv) -> None:
    sdk, me = await mem.user("alice")
    seen = Statuses(sdk)
    mem.server.kick(me.username, rostra.ConflictError("Another login took this resource"))
    await anyio.sleep(QUIET)

    assert (seen, sdk.state, list(mem.server.sessions_of(me.username))) == ([S.DISCONNECTED], rostra.State.IDLE, [])


@MEMORY
async def test_memory_without_async_with_a_lost_session_is_disconnected(mem: MemoryEnv) -> None:
    sdk = rostra.Client(mem.url, **FAST)  # not entered: no task group to retry in
    me = (await sdk.register("alice")).data
    await sdk.connect(me.username, me.password)
    seen = Statuses(sdk)
    mem.server.kick(me.username)
    await anyio.sleep(QUIET)
    state = sdk.state
    await sdk.aclose()

    assert (seen, state) == ([S.DISCONNECTED], rostra.State.IDLE)


@MEMORY
async def test_memory_connect_while_reconnecting_is_409_and_changes_nothing(mem: MemoryEnv) -> None:
    sdk, me = await mem.user("alice")
    seen = Statuses(sdk)
    mem.server.reachable = False
    mem.server.kick(me.username)

    with pytest.raises(rostra.AlreadyConnectedError) as caught:
        await sdk.connect(me.username, me.password)

    assert (caught.value.status_code, caught.value.local, sdk.state, seen) == (
        409,
        True,
        rostra.State.RECONNECTING,
        [S.RECONNECTING],
    )


@MEMORY
@pytest.mark.parametrize("end", ["logout", "aclose"])
async def test_memory_logout_or_aclose_during_backoff_ends_reconnection(mem: MemoryEnv, end: str) -> None:
    sdk, me = await mem.user("alice", reconnect_delay=0.3, reconnect_max_delay=0.3)
    seen = Statuses(sdk)
    mem.server.reachable = False
    mem.server.kick(me.username)
    with anyio.fail_after(GUARD):
        await getattr(sdk, end)()
    mem.server.reachable = True
    await anyio.sleep(QUIET)  # > the backoff: a retry that was not cancelled would have logged in by now

    expected_state = rostra.State.IDLE if end == "logout" else rostra.State.CLOSED
    assert (seen, sdk.state, list(mem.server.sessions_of(me.username))) == (
        [S.RECONNECTING, S.LOGOUT],
        expected_state,
        [],
    )


@MEMORY
async def test_memory_logout_during_a_reconnect_attempt_returns_promptly(mem: MemoryEnv) -> None:
    sdk, me = await mem.user("alice")
    seen = Statuses(sdk)
    mem.server.stalled.add("connect")  # the retry's login never answers
    mem.server.kick(me.username)
    await anyio.sleep(0.5)  # past the first backoff (at most 0.05 s): an attempt is stalled
    with anyio.fail_after(GUARD):
        await sdk.logout()
    mem.server.stalled.clear()
    await anyio.sleep(QUIET)

    assert (seen, sdk.state, list(mem.server.sessions_of(me.username))) == (
        [S.RECONNECTING, S.LOGOUT],
        rostra.State.IDLE,
        [],
    )


@MEMORY
async def test_memory_after_a_reconnect_only_the_contacts_that_changed_meanwhile_are_announced(mem: MemoryEnv) -> None:
    sdk, me = await mem.user("alice")
    kept_sdk, kept = await mem.user("bob")
    gone_sdk, gone = await mem.user("carol")
    for other_sdk, other in ((kept_sdk, kept), (gone_sdk, gone)):
        await sdk.add_contact(other.user_jid)
        await other_sdk.add_contact(me.user_jid)
    contacts: list[rostra.Contact] = []
    sdk.add_contact_listener(lambda event: contacts.append(event.data))
    seen = Statuses(sdk)
    mem.server.reachable = False
    mem.server.kick(me.username)
    await gone_sdk.remove_contact(me.user_jid)  # while alice is away
    mem.server.reachable = True
    await seen.until([S.RECONNECTING, S.CONNECTED])
    roster = (await sdk.get_contacts()).data

    # carol's removal reached alice's roster while she was away (RFC 6121 keeps the entry, subscription none):
    # announced once; bob, unchanged, is not announced again.
    assert contacts == [rostra.Contact(user_jid=gone.user_jid, subscription="none", is_friend=False)]
    assert roster == [
        rostra.Contact(user_jid=kept.user_jid, subscription="both", is_friend=True),
        rostra.Contact(user_jid=gone.user_jid, subscription="none", is_friend=False),
    ]


@MEMORY
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"reconnect": "yes"}, "reconnect must be True or False, not 'yes'"),
        ({"reconnect_delay": 0}, "reconnect_delay must be a positive number of seconds, not 0"),
        ({"reconnect_max_delay": float("inf")}, "reconnect_max_delay must be a positive number of seconds, not inf"),
        # Under the floor the attempts would follow each other without a pause (a spinning loop).
        (
            {"reconnect_delay": 1e-300, "reconnect_max_delay": 1e-300},
            "reconnect_delay must be from 0.01 to 86400 seconds, not 1e-300",
        ),
        ({"reconnect_max_delay": 2**2000}, f"reconnect_max_delay must be from 0.01 to 86400 seconds, not {2**2000!r}"),
        (
            {"reconnect_delay": 5, "reconnect_max_delay": 1},
            "reconnect_max_delay (1) must be at least reconnect_delay (5)",
        ),
    ],
)
async def test_memory_bad_reconnect_options_are_400(options: dict[str, object], message: str) -> None:
    with pytest.raises(rostra.InvalidInputError) as caught:
        rostra.Client("memory://", **options)
    assert (caught.value.status_code, caught.value.message) == (400, message)


# -- a server of our own, killed and started again -----------------------------------------------------------------


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[XmppServer]:
    """An XMPP server of this module's own (the tests kill and restart it): Prosody, or ejabberd."""
    server: XmppServer
    if selected_server() == "ejabberd":
        server, missing = EjabberdServer(upload=False), EjabberdNotInstalledError
    else:
        server, missing = (
            ProsodyServer(directory=tmp_path_factory.mktemp("own-prosody"), upload=False),
            ProsodyNotInstalledError,
        )
    try:
        server.start()
    except missing as error:
        pytest.fail(str(error), pytrace=False)
    yield server
    server.close()


@dataclass
class ServerEnv:
    server: XmppServer
    kind: str
    stack: AsyncExitStack

    @property
    def url(self) -> str:
        return self.server.xmpp_url if self.kind == "xmpp" else self.server.ws_url

    async def client(self, **options: object) -> rostra.Client:
        sdk = rostra.Client(self.url, ca_file=str(self.server.ca_file), **{**FAST, **options})
        return await self.stack.enter_async_context(sdk)

    async def user(self, **options: object) -> tuple[rostra.Client, rostra.RegisterData]:
        sdk = await self.client(**options)
        data = (await sdk.register(f"r{uuid.uuid4().hex[:12]}")).data
        await sdk.connect(data.username, data.password)
        return sdk, data

    async def restart(self) -> None:
        await anyio.to_thread.run_sync(self.server.start)

    async def kill(self) -> None:
        if isinstance(self.server, EjabberdServer):
            await anyio.sleep(DURABLE_AFTER)  # ejabberd loses its last writes on a kill (see EjabberdServer.kill)
        await anyio.to_thread.run_sync(self.server.kill)


@pytest.fixture
async def env(case: tuple[str, str], own_server: XmppServer) -> AsyncIterator[ServerEnv]:
    own_server.start()  # a no-op when running; a test that failed midway may have left it killed
    async with AsyncExitStack() as stack:
        yield ServerEnv(own_server, case[0], stack)


async def befriend(a: rostra.Client, a_jid: str, b: rostra.Client, b_jid: str) -> None:
    async with a.events() as a_events, b.events() as b_events:
        await a.add_contact(b_jid)
        await b.add_contact(a_jid)
        for events, jid in ((a_events, b_jid), (b_events, a_jid)):
            with anyio.fail_after(GUARD):
                async for event in events:
                    if isinstance(event, rostra.ContactEvent) and event.data.user_jid == jid and event.data.is_friend:
                        break


async def profile_from(events: AsyncIterator[rostra.Event], jid: str, name: str) -> rostra.Profile:
    with anyio.fail_after(GUARD):
        async for event in events:
            if isinstance(event, rostra.ProfileEvent) and event.data.user_jid == jid and event.data.nick_name == name:
                return event.data
    raise AssertionError("the event stream ended")


@pytest.mark.server
async def test_a_killed_server_is_reconnecting_then_connected_with_the_same_jid_roster_and_notifications(
    env: ServerEnv,
) -> None:
    sdk, me = await env.user()
    friend_sdk, friend = await env.user()
    await befriend(sdk, me.user_jid, friend_sdk, friend.user_jid)
    roster = (await sdk.get_contacts()).data
    seen, friend_seen = Statuses(sdk), Statuses(friend_sdk)

    await env.kill()
    await seen.until([S.RECONNECTING])
    with anyio.fail_after(GUARD), pytest.raises(rostra.UnreachableError) as caught:
        await sdk.get_user_profile(friend.user_jid)
    down = (seen.copy(), sdk.state, caught.value.status_code)
    await env.restart()
    await seen.until([S.RECONNECTING, S.CONNECTED])
    await friend_seen.until([S.RECONNECTING, S.CONNECTED])
    async with sdk.events() as events:
        await friend_sdk.set_user_profile(name="Back again")
        pushed = await profile_from(events, friend.user_jid, "Back again")
    after = ((await sdk.get_current_user_jid()).user_jid, (await sdk.get_contacts()).data)
    # Presence came back too: the friend is online again in what decides last seen (the Client's presence view).
    await _until(lambda: sdk._online.get(friend.user_jid) is True)
    await friend_sdk.logout()
    await _until(lambda: sdk._online.get(friend.user_jid) is False)  # their going offline is seen: it is live

    assert down == ([S.RECONNECTING], rostra.State.RECONNECTING, 503)
    assert (seen, friend_seen) == ([S.RECONNECTING, S.CONNECTED], [S.RECONNECTING, S.CONNECTED, S.LOGOUT])
    assert after == (me.user_jid, roster)
    assert (pushed.user_jid, pushed.nick_name) == (friend.user_jid, "Back again")


async def _until(condition: Callable[[], bool]) -> None:
    """Wait until ``condition()`` holds (a state the Client keeps, with no event of its own), GUARD at most."""
    with anyio.fail_after(GUARD):
        while True:
            if condition():
                return
            await anyio.sleep(0.01)


@pytest.mark.server
async def test_no_reconnect_after_logout_while_the_server_is_down(env: ServerEnv) -> None:
    sdk, _ = await env.user()
    seen = Statuses(sdk)
    await env.kill()
    await seen.until([S.RECONNECTING])
    with anyio.fail_after(GUARD):
        await sdk.logout()
    await env.restart()
    await anyio.sleep(QUIET)  # several retries' worth: none may come

    assert (seen, sdk.state) == ([S.RECONNECTING, S.LOGOUT], rostra.State.IDLE)


def _delete_account(server: XmppServer, username: str) -> None:
    """Delete the account while the server is down (Prosody's storage, with prosodyctl)."""
    config = server.directory / "prosody.cfg.lua"
    subprocess.run(["prosodyctl", "--config", str(config), "deluser", f"{username}@{server.domain}"], check=True)


@pytest.mark.server
@pytest.mark.prosody_only(reason="the account is deleted with prosodyctl while the server is down")
async def test_a_password_that_stopped_working_while_down_ends_with_authfail_and_no_retry(env: ServerEnv) -> None:
    sdk, me = await env.user()
    seen = Statuses(sdk)
    await env.kill()
    await seen.until([S.RECONNECTING])
    await anyio.to_thread.run_sync(_delete_account, env.server, me.username)
    await env.restart()
    await seen.until([S.RECONNECTING, S.AUTHFAIL])
    await anyio.sleep(QUIET)

    assert (seen, sdk.state) == ([S.RECONNECTING, S.AUTHFAIL], rostra.State.IDLE)


@pytest.fixture
def same_resource(case: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Every session binds the resource ``rostra-same``, so a second login of a user replaces the first."""
    if case[0] == "ws":
        import rostra_ws.transport

        monkeypatch.setattr(rostra_ws.transport, "new_resource", lambda: "rostra-same")
    else:
        from rostra_xmpp._session import XmppSession

        original = XmppSession.open.__func__  # type: ignore[attr-defined]

        async def with_resource(cls: type[XmppSession], jid: Any, *args: Any) -> XmppSession:
            return await original(cls, jid.replace(resource="rostra-same"), *args)  # type: ignore[no-any-return]

        monkeypatch.setattr(XmppSession, "open", classmethod(with_resource))


@pytest.mark.server
@pytest.mark.usefixtures("same_resource")
async def test_a_conflict_with_another_login_ends_with_disconnected_and_no_retry(env: ServerEnv) -> None:
    first, me = await env.user()
    first_seen = Statuses(first)
    second = await env.client()
    second_seen = Statuses(second)
    await second.connect(me.username, me.password)  # the same user and resource: the server drops the first
    await first_seen.until([S.DISCONNECTED])
    await anyio.sleep(QUIET)  # a retry would replace the second login in turn

    assert (first_seen, first.state) == ([S.DISCONNECTED], rostra.State.IDLE)
    assert (second_seen, second.state) == ([S.CONNECTING, S.CONNECTED], rostra.State.CONNECTED)
    assert (await second.get_current_user_jid()).user_jid == me.user_jid
