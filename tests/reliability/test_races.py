"""Races, on xmpp:// (asyncio) and ws:// (asyncio, trio) against the session's XMPP server: connect() twice at once,
logout() during connect, during SASL, during the reconnect backoff and twice at once, 100 concurrent requests on one
session, and listeners that fire once per change.

Slow steps are made slow deterministically: a login stalls at a point the test controls (an event it never sets),
never by a sleep hoped to be long enough. Every wait that must not hang is bounded by ``anyio.fail_after``; the
quiet periods only give a wrong retry the time to show itself. Status sequences are asserted exactly.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc
import pytest
from _peers import Proxy, proxy_to

import rostra
import rostra._client
from _cases import CASES, Statuses, anyio_backend, case  # noqa: F401 - fixtures
from _prosody import XmppServer
from rostra import ConnectionStatus as S

pytestmark = pytest.mark.anyio

GUARD = 30  # the bound of every wait that must not hang (generous: the machine is shared)
QUIET = 1.5  # how long a test listens for statuses that must not come


@dataclass
class Env:
    server: XmppServer
    kind: str
    proxy: Proxy
    stack: AsyncExitStack

    @property
    def url(self) -> str:
        return self.server.xmpp_url if self.kind == "xmpp" else self.server.ws_url

    @property
    def proxy_url(self) -> str:
        return self.proxy.url(self.kind, _path(self.url))

    async def client(self, url: str | None = None, **options: object) -> rostra.Client:
        sdk = rostra.Client(url or self.url, ca_file=str(self.server.ca_file), **options)
        return await self.stack.enter_async_context(sdk)

    async def account(self) -> rostra.RegisterData:
        sdk = await self.client()
        return (await sdk.register(f"race{uuid.uuid4().hex[:12]}")).data


def _path(url: str) -> str:
    """The path of a server URL (``/xmpp-websocket`` of a ws:// one; empty for xmpp://)."""
    _, slash, path = url.partition("://")[2].partition("/")
    return slash + path


@pytest.fixture
async def env(case: tuple[str, str], xmpp_server: XmppServer) -> AsyncIterator[Env]:
    direct = xmpp_server.xmpp_url if case[0] == "xmpp" else xmpp_server.ws_url
    port = int(direct.partition("://")[2].partition("/")[0].rpartition(":")[2])
    async with proxy_to("127.0.0.1", port) as proxy, AsyncExitStack() as stack:
        yield Env(xmpp_server, case[0], proxy, stack)


# -- connect and logout ----------------------------------------------------------------------------------------------


async def test_connect_twice_at_once_makes_one_connection_and_one_connected(env: Env) -> None:
    me = await env.account()
    sdk = await env.client(env.proxy_url)
    seen = Statuses(sdk)
    codes: list[int] = []

    async def connect() -> None:
        codes.append((await sdk.connect(me.username, me.password)).status_code)

    with anyio.fail_after(GUARD):
        async with anyio.create_task_group() as group:
            group.start_soon(connect)
            group.start_soon(connect)

    assert (codes, seen, env.proxy.opened, sdk.state) == (
        [200, 200],
        [S.CONNECTING, S.CONNECTED],
        1,
        rostra.State.CONNECTED,
    )


async def _logout_while_connect_is_held(
    env: Env, sdk: rostra.Client, me: rostra.RegisterData, held: anyio.Event
) -> Any:
    """Start connect(), wait until the login is held where the test wants it, logout(); the connect()'s error."""
    outcome: list[BaseException] = []

    async def connect() -> None:
        try:
            await sdk.connect(me.username, me.password)
        except rostra.RostraError as exc:
            outcome.append(exc)

    with anyio.fail_after(GUARD):
        async with anyio.create_task_group() as group:
            group.start_soon(connect)
            await held.wait()
            logged_out = await sdk.logout()
    return logged_out.status_code, outcome


async def test_logout_during_connect_returns_promptly_and_nothing_connects_later(env: Env) -> None:
    me = await env.account()
    accepted, released = anyio.Event(), anyio.Event()

    async def silent(stream: anyio.abc.SocketStream) -> None:  # accepts, never answers: the login waits
        accepted.set()
        async with stream:
            with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                while True:
                    await stream.receive()  # dropped, until the client lets the connection go
        released.set()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    sdk = await env.client(f"{env.kind}://127.0.0.1:{port}{_path(env.url)}")
    seen = Statuses(sdk)
    async with anyio.create_task_group() as server:
        server.start_soon(listener.serve, silent)
        code, outcome = await _logout_while_connect_is_held(env, sdk, me, accepted)
        with anyio.fail_after(GUARD):
            await released.wait()  # the ended login closed its connection
        await anyio.sleep(QUIET)
        server.cancel_scope.cancel()

    assert (code, [type(e) for e in outcome], seen, sdk.state) == (
        200,
        [rostra.NotConnectedError],
        [S.CONNECTING, S.LOGOUT],
        rostra.State.IDLE,
    )


def hold_sasl(kind: str, monkeypatch: pytest.MonkeyPatch) -> anyio.Event:
    """From now on, logins stop in the middle of SASL (the server's challenge came; our response is never sent);
    the event is set when one got there."""
    held = anyio.Event()
    if kind == "ws":
        import rostra_ws.transport

        send = rostra_ws.transport._send_text

        async def hold_the_response(websocket: Any, text: str) -> None:
            if text.startswith("<response") and "xmpp-sasl" in text:
                held.set()
                await anyio.sleep_forever()
            await send(websocket, text)

        monkeypatch.setattr(rostra_ws.transport, "_send_text", hold_the_response)
    else:
        import aioxmpp.sasl

        async def hold(self: object, payload: object) -> object:
            held.set()
            await anyio.sleep_forever()

        monkeypatch.setattr(aioxmpp.sasl.SASLXMPPInterface, "respond", hold)
    return held


async def test_logout_during_sasl_returns_promptly_and_nothing_connects_later(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    me = await env.account()
    sdk = await env.client(env.proxy_url)
    seen = Statuses(sdk)
    held = hold_sasl(env.kind, monkeypatch)
    code, outcome = await _logout_while_connect_is_held(env, sdk, me, held)
    await anyio.sleep(QUIET)

    assert (code, [type(e) for e in outcome], seen, sdk.state, env.proxy.opened) == (
        200,
        [rostra.NotConnectedError],
        [S.CONNECTING, S.LOGOUT],
        rostra.State.IDLE,
        1,
    )


async def test_logout_during_the_reconnect_backoff_returns_promptly_and_nothing_reconnects(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rostra._client, "_jitter", lambda ceiling: 0.5)  # a known backoff, shorter than QUIET
    me = await env.account()
    sdk = await env.client(env.proxy_url)
    await sdk.connect(me.username, me.password)
    seen = Statuses(sdk)
    env.proxy.cut()  # the network drops: the transport reports the loss
    await seen.until([S.RECONNECTING])
    with anyio.fail_after(GUARD):
        code = (await sdk.logout()).status_code
    await anyio.sleep(QUIET)  # past the backoff: a retry that was not cancelled would have connected

    assert (code, seen, sdk.state, env.proxy.opened) == (200, [S.RECONNECTING, S.LOGOUT], rostra.State.IDLE, 1)


async def test_a_cut_connection_is_restored_once(env: Env) -> None:
    me = await env.account()
    sdk = await env.client(env.proxy_url, reconnect_delay=0.05, reconnect_max_delay=0.2)
    await sdk.connect(me.username, me.password)
    seen = Statuses(sdk)
    env.proxy.cut()
    await seen.until([S.RECONNECTING, S.CONNECTED])
    await anyio.sleep(QUIET)
    jid = (await sdk.get_current_user_jid()).user_jid

    assert (seen, jid, env.proxy.opened) == ([S.RECONNECTING, S.CONNECTED], me.user_jid, 2)


async def test_logout_twice_at_once_returns_both_and_announces_logout_once(env: Env) -> None:
    me = await env.account()
    sdk = await env.client()
    await sdk.connect(me.username, me.password)
    seen = Statuses(sdk)
    codes: list[int] = []

    async def logout() -> None:
        codes.append((await sdk.logout()).status_code)

    with anyio.fail_after(GUARD):
        async with anyio.create_task_group() as group:
            group.start_soon(logout)
            group.start_soon(logout)
    await anyio.sleep(QUIET)

    assert (codes, seen, sdk.state) == ([200, 200], [S.LOGOUT], rostra.State.IDLE)


# -- many requests, and listeners ------------------------------------------------------------------------------------

USERS = 100


async def test_a_hundred_concurrent_requests_on_one_session_each_get_their_own_reply(env: Env) -> None:
    limiter = anyio.CapacityLimiter(8)  # first publishes at the same instant: ejabberd's node-creation race too
    expected: dict[str, tuple[str, str]] = {}

    async def make_user(i: int) -> None:
        async with limiter, rostra.Client(env.url, ca_file=str(env.server.ca_file)) as sdk:
            data = (await sdk.register(f"many{i}x{uuid.uuid4().hex[:10]}")).data
            await sdk.connect(data.username, data.password)
            stored = (await sdk.set_user_profile(name=f"User {i}", status=f"status of {i} 🎉")).data
            expected[data.user_jid] = (stored.nick_name, stored.status)

    with anyio.fail_after(10 * GUARD):
        async with anyio.create_task_group() as group:
            for i in range(USERS):
                group.start_soon(make_user, i)
    me = await env.account()
    sdk = await env.client()
    await sdk.connect(me.username, me.password)
    pushed: list[str] = []
    sdk.add_user_profile_listener(lambda event: pushed.append(event.data.user_jid))
    replies: dict[str, tuple[str, str]] = {}

    async def read(jid: str) -> None:
        profile = (await sdk.get_user_profile(jid)).data
        replies[jid] = (profile.nick_name, profile.status) if profile.user_jid == jid else ("wrong user", jid)

    with anyio.fail_after(GUARD):
        async with anyio.create_task_group() as group:
            for jid in expected:
                group.start_soon(read, jid)

    assert len(expected) == USERS
    assert replies == expected
    assert sorted(pushed) == sorted(expected)  # one profile event per reply: none twice, none lost


async def test_one_profile_change_of_a_friend_fires_each_listener_once(env: Env) -> None:
    a_data, b_data = await env.account(), await env.account()
    a, b = await env.client(), await env.client()
    await a.connect(a_data.username, a_data.password)
    await b.connect(b_data.username, b_data.password)
    async with a.events() as a_events, b.events() as b_events:
        await a.add_contact(b_data.user_jid)
        await b.add_contact(a_data.user_jid)
        for events, jid in ((a_events, b_data.user_jid), (b_events, a_data.user_jid)):
            with anyio.fail_after(GUARD):
                async for event in events:
                    if isinstance(event, rostra.ContactEvent) and event.data.user_jid == jid and event.data.is_friend:
                        break
    profiles: list[rostra.Profile] = []
    friends: list[rostra.Contact] = []
    a.add_user_profile_listener(lambda event: profiles.append(event.data))
    a.add_contact_listener(lambda event: friends.append(event.data))
    async with a.events() as stream:
        await b.set_user_profile(name="Once")
        with anyio.fail_after(GUARD):
            async for event in stream:
                if isinstance(event, rostra.ProfileEvent):
                    break
    await anyio.sleep(QUIET)  # a second event for the same change would arrive by now

    assert [(p.user_jid, p.nick_name) for p in profiles] == [(b_data.user_jid, "Once")]
    assert friends == []
