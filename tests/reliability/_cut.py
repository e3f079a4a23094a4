"""A TCP proxy whose connections the test can cut, for the reconnect and race tests (``from _cut import``).

``cut_proxy_to(host, port)`` runs a ``CutProxy`` on 127.0.0.1 that forwards every connection to the real server
(TLS verifies the name ``localhost``, so it is transparent to xmpp:// and ws://). ``cut()`` closes every open
connection at once, as a dropped network would; ``opened`` counts the connections accepted, so a test can see
that nothing connected again. Everything is anyio: it runs under asyncio and trio.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc

_GONE = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


class CutProxy:
    """Forwards connections to ``target``; ``cut()`` closes the open ones."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.opened = 0  # client connections accepted so far
        self._open: set[anyio.CancelScope] = set()

    def url(self, scheme: str, path: str = "") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def cut(self) -> int:
        """Close every open connection (both sides); returns how many there were."""
        scopes, self._open = self._open, set()
        for scope in scopes:
            scope.cancel()
        return len(scopes)

    async def _handle(self, client: anyio.abc.SocketStream) -> None:
        self.opened += 1
        async with client:
            try:
                upstream = await anyio.connect_tcp(*self.target)
            except OSError:
                return
            async with upstream, anyio.create_task_group() as group:
                self._open.add(group.cancel_scope)
                group.start_soon(_pump, client, upstream, group.cancel_scope)
                await _pump(upstream, client, group.cancel_scope)
            self._open.discard(group.cancel_scope)


async def _pump(source: anyio.abc.SocketStream, sink: anyio.abc.SocketStream, scope: anyio.CancelScope) -> None:
    try:
        while True:
            await sink.send(await source.receive())
    except _GONE:
        scope.cancel()  # one side went: the other goes too


@asynccontextmanager
async def cut_proxy_to(host: str, port: int) -> AsyncIterator[CutProxy]:
    """A running ``CutProxy`` to ``host:port`` (its ``port`` set); stopped, with every connection, on exit."""
    proxy = CutProxy(host, port)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    proxy.port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with anyio.create_task_group() as group:
        group.start_soon(listener.serve, proxy._handle)
        try:
            yield proxy
        finally:
            group.cancel_scope.cancel()
