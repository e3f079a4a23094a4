"""Shared fixtures: every API test runs once per server kind.

``server_url`` yields a URL for a fresh-enough server: ``memory://`` (a new in-process server per test) or
``xmpp://`` or ``ws://`` (the Prosody that the suite starts once per session; see ``tests/_prosody.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from _prosody import prosody, xmpp_server  # noqa: F401  (the session's XMPP server, started by the suite)

SERVER_KINDS = ["memory", "xmpp", "ws"]


@pytest.fixture(params=SERVER_KINDS)
def server_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server_url(server_kind: str, request: pytest.FixtureRequest) -> Iterator[str]:
    if server_kind == "memory":
        # A server of its own for each test: memory://NAME keys the in-process server registry.
        yield f"memory://test-{uuid.uuid4().hex}"
    else:
        server = request.getfixturevalue("prosody")
        yield server.xmpp_url if server_kind == "xmpp" else server.ws_url


@pytest.fixture
def client_options(server_kind: str, request: pytest.FixtureRequest) -> dict[str, object]:
    """Keyword options for rostra.Client matching ``server_url`` (the CA file for Prosody's TLS)."""
    if server_kind == "memory":
        return {}
    server = request.getfixturevalue("prosody")
    return {"ca_file": str(server.ca_file)}
