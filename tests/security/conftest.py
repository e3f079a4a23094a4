"""Fixtures of the security tests: registered, connected users on the parametrized ``server_url``, or on one XMPP
carrier of the suite's server (``make_xmpp_user``, parametrized over xmpp:// and ws://)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest
from _security_helpers import User

import rostra


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aioxmpp, behind xmpp://, runs on asyncio only


MakeUser = Callable[[], Awaitable[User]]


@pytest.fixture
async def make_user(server_url: str, client_options: dict[str, object]) -> AsyncIterator[MakeUser]:
    """``await make_user()``: a freshly registered, connected user with its own Client (closed after the test)."""
    async with AsyncExitStack() as stack:

        async def make() -> User:
            sdk = await stack.enter_async_context(rostra.Client(server_url, **client_options))
            data = (await sdk.register(f"s{uuid.uuid4().hex}")).data
            await sdk.connect(data.username, data.password)
            return User(sdk, data.user_jid)

        yield make


@pytest.fixture(params=["xmpp", "ws"])
async def make_xmpp_user(request: pytest.FixtureRequest, xmpp_server: Any) -> AsyncIterator[MakeUser]:
    """``await make_xmpp_user()``: as ``make_user``, on xmpp:// or ws:// of the suite's XMPP server."""
    url = xmpp_server.xmpp_url if request.param == "xmpp" else xmpp_server.ws_url
    async with AsyncExitStack() as stack:

        async def make() -> User:
            sdk = await stack.enter_async_context(rostra.Client(url, ca_file=str(xmpp_server.ca_file)))
            data = (await sdk.register(f"s{uuid.uuid4().hex}")).data
            await sdk.connect(data.username, data.password)
            return User(sdk, data.user_jid)

        yield make
