"""Timeouts against silent peers, through the Client, on xmpp:// (asyncio) and ws:// (asyncio and trio).

A ``Proxy`` (``_peers``) sits in front of the suite's XMPP server. A connection it accepts in mode ``"silent"``
gets nothing back (no stream header, no WebSocket handshake); in ``"after-upgrade"`` it gets the WebSocket
handshake and then no ``<open/>``; ``freeze()`` holds the server's bytes of a logged-in session (a server that
never answers an IQ) and ``thaw()`` delivers them late. The timeouts here are short; every wait is bounded by
``anyio.fail_after`` as a guard against a hang, never as a measurement.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import anyio
import pytest
from _peers import Clients as Env
from _peers import clients_on, live_tasks, statuses, wait_no_new_tasks

import rostra
from _cases import CASES, anyio_backend, case  # noqa: F401 - fixtures
from _prosody import XmppServer
from rostra import ConnectionStatus as S

pytestmark = pytest.mark.anyio

# The WebSocket handshake and keepalive exist on ws:// only (xmpp:// sends no keepalive: aioxmpp's defaults).
WS_ONLY = pytest.mark.parametrize("case", CASES[1:], ids=["ws-asyncio", "ws-trio"], indirect=True)
SHORT = 0.5  # connect_timeout / request_timeout of the Client under test, in seconds
GUARD = 15  # the bound of every wait that must not hang (generous: the machine is shared)


@pytest.fixture
def kind(case: tuple[str, str]) -> str:
    return case[0]


@pytest.fixture
async def env(kind: str, xmpp_server: XmppServer) -> AsyncIterator[Env]:
    async with clients_on(xmpp_server, kind) as clients:
        yield clients


# -- connect ------------------------------------------------------------------------------------------------------


async def _silent_connect_then_good_one(env: Env, mode: str) -> tuple[int, list[S], int, int, set[object], list[S]]:
    """connect() through a proxy in ``mode``; then, with the proxy passing again, connect() on the same Client.

    Returns the first connect's status code, the statuses it announced, the proxy's opened/closed counts once it
    saw the client go, the tasks left behind, and the statuses of the second connect."""
    account = await env.account()
    sdk = await env.client(env.proxy_url, connect_timeout=SHORT)
    seen = statuses(sdk)
    env.proxy.mode = mode  # type: ignore[assignment]
    before = live_tasks()
    with anyio.fail_after(GUARD), pytest.raises(rostra.RequestTimeoutError) as caught:
        await sdk.connect(account.username, account.password)
    first = list(seen)
    with anyio.fail_after(GUARD):
        await env.proxy.wait_all_closed()
    opened, closed = env.proxy.opened, env.proxy.closed
    left = await wait_no_new_tasks(before)
    env.proxy.mode = "pass"
    seen.clear()
    with anyio.fail_after(GUARD):
        await sdk.connect(account.username, account.password)
    return caught.value.status_code, first, opened, closed, left, list(seen)


async def test_a_server_that_never_sends_its_stream_header_is_408_after_connect_timeout(env: Env) -> None:
    outcome = await _silent_connect_then_good_one(env, "silent")
    assert outcome == (408, [S.CONNECTING, S.CONNECTIONFAILED], 1, 1, set(), [S.CONNECTING, S.CONNECTED])


@WS_ONLY
async def test_a_websocket_server_that_never_sends_open_is_408_after_connect_timeout(env: Env) -> None:
    outcome = await _silent_connect_then_good_one(env, "after-upgrade")
    assert outcome == (408, [S.CONNECTING, S.CONNECTIONFAILED], 1, 1, set(), [S.CONNECTING, S.CONNECTED])
    assert env.proxy.held_bytes > 0  # our <open/> reached the server: its <open/> and features were held back


async def test_a_silent_server_during_register_is_408_and_leaves_nothing_open(env: Env) -> None:
    sdk = await env.client(env.proxy_url, connect_timeout=SHORT, request_timeout=SHORT)
    env.proxy.mode = "silent"
    before = live_tasks()
    with anyio.fail_after(GUARD), pytest.raises(rostra.RequestTimeoutError) as caught:
        await sdk.register(f"t{uuid.uuid4().hex}")
    with anyio.fail_after(GUARD):
        await env.proxy.wait_all_closed()
    left = await wait_no_new_tasks(before)
    assert (caught.value.status_code, env.proxy.opened, env.proxy.closed, left, sdk.state) == (
        408,
        1,
        1,
        set(),
        rostra.State.IDLE,
    )


# -- requests -----------------------------------------------------------------------------------------------------


async def test_an_unanswered_request_is_408_and_the_late_reply_is_ignored(env: Env) -> None:
    bob, carol, alice = await env.account("Bob"), await env.account("Carol"), await env.account()
    sdk = await env.client(env.proxy_url, request_timeout=SHORT)
    await sdk.connect(alice.username, alice.password)
    seen = statuses(sdk)
    profiles: list[tuple[str, str]] = []
    sdk.add_user_profile_listener(lambda event: profiles.append((event.data.user_jid, event.data.nick_name)))
    env.proxy.freeze()
    with anyio.fail_after(GUARD), pytest.raises(rostra.RequestTimeoutError) as caught:
        await sdk.get_user_profile(bob.jid)
    env.proxy.thaw()  # Bob's profile now arrives, late
    with anyio.fail_after(GUARD):
        answer = await sdk.get_user_profile(carol.jid)
        again = await sdk.get_user_profile(bob.jid)
    assert (caught.value.status_code, answer.data.nick_name, again.data.nick_name) == (408, "Carol", "Bob")
    assert (profiles, seen, sdk.state) == (
        [(carol.jid, "Carol"), (bob.jid, "Bob")],
        [],
        rostra.State.CONNECTED,
    )
    assert env.proxy.held_bytes > 0  # the late reply was really held and then delivered


async def test_every_request_kind_times_out_with_408_while_the_server_is_silent(env: Env) -> None:
    bob, alice = await env.account("Bob"), await env.account()
    sdk = await env.client(env.proxy_url, request_timeout=SHORT)
    await sdk.connect(alice.username, alice.password)
    calls = {
        "get_user_profile": lambda: sdk.get_user_profile(bob.jid),
        "set_user_profile": lambda: sdk.set_user_profile(status="frozen"),
        "get_last_seen": lambda: sdk.get_last_seen(bob.jid),
        "get_metadata": sdk.get_metadata,
        "get_contacts": sdk.get_contacts,
        "remove_contact": lambda: sdk.remove_contact(bob.jid),
    }
    env.proxy.freeze()
    codes: dict[str, int] = {}
    for name, call in calls.items():
        with anyio.fail_after(GUARD):
            try:
                await call()
            except rostra.RostraError as exc:
                codes[name] = exc.status_code
    env.proxy.thaw()
    with anyio.fail_after(GUARD):
        status = (await sdk.set_user_profile(status="thawed")).data.status
    assert (codes, status) == (dict.fromkeys(calls, 408), "thawed")


async def test_a_session_frozen_past_its_keepalive_is_lost_once_after_the_408_and_comes_back(env: Env) -> None:
    """After ``ping_interval`` the carrier pings (a WebSocket ping; aioxmpp's XMPP ping) and waits ``request_timeout``
    for the answer: a session frozen longer is lost, RECONNECTING is announced once, a request meanwhile is a 503 at
    once, and the Client's own reconnect brings it back once the server answers again."""
    alice = await env.account()
    sdk = await env.client(env.proxy_url, request_timeout=SHORT, ping_interval=0.2)
    await sdk.connect(alice.username, alice.password)
    seen = statuses(sdk)
    changed, connected = anyio.Event(), anyio.Event()
    sdk.add_connection_listener(lambda event: changed.set())
    sdk.add_connection_listener(lambda event: event.status is S.CONNECTED and connected.set())
    env.proxy.freeze()
    with anyio.fail_after(GUARD), pytest.raises(rostra.RequestTimeoutError) as caught:
        await sdk.get_metadata()
    with anyio.fail_after(GUARD):
        await changed.wait()
    lost = list(seen)
    with pytest.raises(rostra.RostraError) as meanwhile:
        await sdk.get_metadata()
    env.proxy.thaw()
    with anyio.fail_after(GUARD):
        await connected.wait()
        metadata = (await sdk.get_metadata()).data
    assert (caught.value.status_code, lost, meanwhile.value.status_code, metadata, seen) == (
        408,
        [S.RECONNECTING],
        503,
        {},
        [S.RECONNECTING, S.CONNECTED],
    )


# -- the options --------------------------------------------------------------------------------------------------


def test_the_readme_documents_both_timeouts_with_their_defaults() -> None:
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.partition("### Timeouts")[2].partition("\n## ")[0]
    assert ("`connect_timeout` (default 10 s)" in section, "`request_timeout` (default 10 s)" in section) == (
        True,
        True,
    )
