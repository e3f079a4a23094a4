"""The (transport, event loop) cases server-backed tests run on, and a recorder of connection statuses.

Test modules take the fixtures by importing them (``from _cases import anyio_backend, case``), like ``_prosody``.
aioxmpp (xmpp://) runs on asyncio only; rostra-ws (ws://) runs on asyncio and trio.
"""

from __future__ import annotations

import anyio
import pytest

import rostra

CASES = [("xmpp", "asyncio"), ("ws", "asyncio"), ("ws", "trio")]


@pytest.fixture(params=CASES, ids=[f"{kind}-{backend}" for kind, backend in CASES])
def case(request: pytest.FixtureRequest) -> tuple[str, str]:
    """``(transport kind, event loop)``: one of CASES."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def anyio_backend(case: tuple[str, str]) -> str:
    return case[1]


class Statuses(list[rostra.ConnectionStatus]):
    """The statuses a Client announces, in order (a list); ``until`` waits for as many as expected."""

    def __init__(self, sdk: rostra.Client, guard: float = 30) -> None:
        super().__init__()
        self._guard = guard
        self._changed = anyio.Event()
        sdk.add_connection_listener(self._add)

    def _add(self, event: rostra.ConnectionEvent) -> None:
        self.append(event.status)
        self._changed.set()

    async def until(self, expected: list[rostra.ConnectionStatus]) -> None:
        """Wait until as many statuses as ``expected`` holds have come (the caller then compares them exactly)."""
        with anyio.fail_after(self._guard):
            while len(self) < len(expected):
                self._changed = anyio.Event()
                await self._changed.wait()
