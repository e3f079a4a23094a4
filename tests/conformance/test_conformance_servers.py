"""The kit on the suite's XMPP server: xmpp:// (asyncio) and ws:// (asyncio and trio)."""

from __future__ import annotations

import pytest

from rostra.testing import ConformanceTests, Target

CASES = [("xmpp", "asyncio"), ("ws", "asyncio"), ("ws", "trio")]


class TestServer(ConformanceTests):
    @pytest.fixture(params=CASES, ids=[f"{kind}-{backend}" for kind, backend in CASES])
    def conformance_target(self, request: pytest.FixtureRequest, xmpp_server: object) -> Target:
        kind, backend = request.param
        url = xmpp_server.xmpp_url if kind == "xmpp" else xmpp_server.ws_url  # type: ignore[attr-defined]
        return Target(url, options={"ca_file": str(xmpp_server.ca_file)}, backend=backend)  # type: ignore[attr-defined]
