"""The state sweep: every (state, operation) pair of the core's table, on the transport under test.

For each state of ``rostra._state.State`` a fresh Client is brought into it over the transport (CONNECTING is caught
while a real ``connect()`` is under way; RECONNECTING by reporting a lost session to a connected Client, as its
transport would, with a reconnect backoff far longer than the sweep), then one operation is called with valid
arguments:
- a pair the table holds must succeed (200) and leave the state the table names (in CONNECTING or RECONNECTING, a
  call that keeps the state may also see the login under way finish: CONNECTED);
- any other pair must raise the table's Local error (``REFUSALS``) with ``local`` True and leave the state unchanged.
``connect()`` in CONNECTING is the documented exception: with the same credentials it joins the attempt under way,
so the sweep calls it with another user's.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel

from .._client import Client
from .._errors import RostraError, UnreachableError
from .._schemas import RegisterData
from .._state import REFUSALS, TRANSITIONS, Input, State
from ._model import Target

__all__ = ["OPERATIONS", "check_sweep"]

_Operation = Callable[[Client, RegisterData, RegisterData], Awaitable[object]]

#: Every public operation, with valid arguments: (name, its input in the table, the call on (client, me, peer)).
OPERATIONS: list[tuple[str, Input, _Operation]] = [
    ("register", Input.REGISTER, lambda c, me, peer: c.register(f"sweep{secrets.token_hex(6)}")),
    ("connect", Input.CONNECT, lambda c, me, peer: c.connect(peer.username, peer.password)),
    ("logout", Input.LOGOUT, lambda c, me, peer: c.logout()),
    ("aclose", Input.CLOSE, lambda c, me, peer: c.aclose()),
    ("get_user_profile", Input.GET_PROFILE, lambda c, me, peer: c.get_user_profile(peer.user_jid)),
    ("set_user_profile", Input.SET_PROFILE, lambda c, me, peer: c.set_user_profile(status="swept")),
    ("get_last_seen", Input.GET_LAST_SEEN, lambda c, me, peer: c.get_last_seen(me.user_jid)),
    ("get_current_user_jid", Input.GET_CURRENT_JID, lambda c, me, peer: c.get_current_user_jid()),
    ("get_metadata", Input.GET_METADATA, lambda c, me, peer: c.get_metadata()),
    ("add_contact", Input.ADD_CONTACT, lambda c, me, peer: c.add_contact(peer.user_jid)),
    ("remove_contact", Input.REMOVE_CONTACT, lambda c, me, peer: c.remove_contact(peer.user_jid)),
    ("get_contacts", Input.GET_CONTACTS, lambda c, me, peer: c.get_contacts()),
    ("accept_contact", Input.ANSWER_CONTACT_REQUEST, lambda c, me, peer: c.accept_contact(peer.user_jid)),
    ("decline_contact", Input.ANSWER_CONTACT_REQUEST, lambda c, me, peer: c.decline_contact(peer.user_jid)),
]

#: How often CONNECTING is tried for before the sweep gives up (a transport that connects without ever yielding).
_CONNECTING_TRIES = 50
#: The reconnect backoff of a Client swept in RECONNECTING: no retry is due while the sweep runs (seconds).
_NO_RETRY_SOON = {"reconnect_delay": 3600.0, "reconnect_max_delay": 3600.0}


class _Users:
    def __init__(self, me: RegisterData, peer: RegisterData) -> None:
        self.me, self.peer = me, peer


async def _register_users(target: Target) -> _Users:
    run = secrets.token_hex(4)
    async with target.client() as client:
        me = (await client.register(f"sweep{run}me")).data
        peer = (await client.register(f"sweep{run}peer")).data
    return _Users(me, peer)


@asynccontextmanager
async def _client_in(state: State, target: Target, users: _Users) -> AsyncIterator[Client]:
    """A Client on ``target`` in ``state``: the next statement runs with no checkpoint after the state was reached."""
    async with anyio.create_task_group() as group:
        client = target.client() if state is not State.RECONNECTING else Client(target.url, **_reconnecting(target))
        async with client:
            if state in (State.CONNECTED, State.RECONNECTING):
                await client.connect(users.me.username, users.me.password)
            if state is State.RECONNECTING:
                client._lose_session(UnreachableError("The state sweep dropped this session"))  # as a transport would
            elif state is State.CLOSED:
                await client.aclose()
            elif state is State.CONNECTING:
                await _catch_connecting(client, users, group)
            assert client.state is state, f"could not bring a Client into {state.value}: it is {client.state.value}"
            yield client
        group.cancel_scope.cancel()


def _reconnecting(target: Target) -> dict[str, Any]:
    return {**target.options, **_NO_RETRY_SOON}


async def _catch_connecting(client: Client, users: _Users, group: anyio.abc.TaskGroup) -> None:
    """Start ``connect()`` and return while it is under way (retried if a login completed before it could be seen)."""
    for _ in range(_CONNECTING_TRIES):
        group.start_soon(_connect_quietly, client, users.me)
        while client.state is State.IDLE:
            await anyio.lowlevel.checkpoint()
        if client.state is State.CONNECTING:
            return
        await client.logout()
    raise AssertionError(
        f"connect() never stayed CONNECTING across a checkpoint in {_CONNECTING_TRIES} tries: "
        "the transport logs in without yielding to the event loop"
    )


async def _connect_quietly(client: Client, me: RegisterData) -> None:
    # The sweep ends attempts with logout() or aclose(): their outcome is not what it checks.
    with contextlib.suppress(RostraError):
        await client.connect(me.username, me.password)


def _expected_after(state: State, event: Input) -> set[State]:
    after = TRANSITIONS[(state, event)][0]
    if event is Input.CONNECT:
        after = TRANSITIONS[(after, Input.CONNECT_SUCCEEDED)][0]
    if state in (State.CONNECTING, State.RECONNECTING) and after is state:
        return {state, State.CONNECTED}  # the login under way may finish meanwhile
    return {after}


async def _sweep(target: Target) -> list[str]:
    users = await _register_users(target)
    problems: list[str] = []
    for state in State:
        for name, event, call in OPERATIONS:
            async with _client_in(state, target, users) as client:
                outcome: Any = None
                try:
                    await call(client, users.me, users.peer)
                except RostraError as exc:
                    outcome = exc
                after = client.state
            pair = f"{name}() in {state.value}"
            if (state, event) in TRANSITIONS:
                if outcome is not None:
                    problems.append(f"{pair} is allowed by the table but raised {outcome!r}")
                elif after not in (expected := _expected_after(state, event)):
                    problems.append(f"{pair} left the state {after.value}, the table says {expected}")
            else:
                refusal = REFUSALS[state][event]
                if type(outcome) is not refusal or not outcome.local:
                    problems.append(f"{pair} must raise the Local {refusal.__name__}, not {outcome!r}")
                elif after is not state:
                    problems.append(f"{pair} was refused but changed the state to {after.value}")
    return problems


def check_sweep(target: Target) -> None:
    """Sweep every (state, operation) pair on ``target``; any pair off the table raises AssertionError listing all."""
    problems = anyio.run(_sweep, target, backend=target.backend)
    assert not problems, "the state sweep found pairs off the table:\n" + "\n".join(problems)
