"""Fixtures of the API tests: clients on the parametrized ``server_url`` and registered, connected users."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

import anyio
import pytest

import rostra


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aioxmpp, behind xmpp://, runs on asyncio only


def fresh_identifier(prefix: str = "u") -> str:
    """A new identifier per call: Prosody is shared by the whole session."""
    return f"{prefix}{uuid.uuid4().hex}"


@dataclass
class User:
    sdk: rostra.Client
    username: str
    password: str
    jid: str


MakeClient = Callable[..., Awaitable[rostra.Client]]
MakeUser = Callable[..., Awaitable[User]]


@pytest.fixture
async def make_client(server_url: str, client_options: dict[str, object]) -> AsyncIterator[MakeClient]:
    """``await make_client(**options)``: an entered Client on the test's server, closed after the test."""
    async with AsyncExitStack() as stack:

        async def make(**options: object) -> rostra.Client:
            return await stack.enter_async_context(rostra.Client(server_url, **{**client_options, **options}))

        yield make


@pytest.fixture
def make_user(make_client: MakeClient) -> MakeUser:
    """``await make_user(connect=True, **options)``: a freshly registered user with its own Client."""

    async def make(*, connect: bool = True, **options: object) -> User:
        sdk = await make_client(**options)
        data = (await sdk.register(fresh_identifier())).data
        if connect:
            await sdk.connect(data.username, data.password)
        return User(sdk, data.username, data.password, data.user_jid)

    return make


@pytest.fixture
def make_friends() -> Callable[[User, User], Awaitable[None]]:
    """``await make_friends(a, b)``: both add each other; returns once both see a mutual subscription."""

    async def befriend(a: User, b: User) -> None:
        async with a.sdk.events() as a_events, b.sdk.events() as b_events:
            await a.sdk.add_contact(b.jid)
            await b.sdk.add_contact(a.jid)
            await wait_for_friend(a_events, b.jid)
            await wait_for_friend(b_events, a.jid)

    return befriend


async def wait_for_friend(events: AsyncIterator[rostra.Event], jid: str) -> None:
    """Consume ``events`` until one says ``jid`` became a mutual contact (5 s at most)."""
    with anyio.fail_after(5):
        async for event in events:
            if isinstance(event, rostra.ContactEvent) and event.data.user_jid == jid and event.data.is_friend:
                return
