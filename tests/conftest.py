"""Shared fixtures: every API test runs once per server kind.

``server_url`` yields a URL for a fresh-enough server: ``memory://`` (a new in-process server per test) or
``xmpp://`` or ``ws://`` (the XMPP server that the suite starts once per session, Prosody or ejabberd: see
``tests/_prosody.py``).

Every test that reaches the session's XMPP server (``xmpp_server``, or ``server_url`` of kind xmpp/ws) is marked
``server``: ``ROSTRA_TEST_SERVER=ejabberd pytest -m server`` (``nox -s tests-ejabberd``) runs exactly those.
``ejabberd_only`` tests (the ejabberd launcher's) run only in that run; ``prosody_only`` ones never do.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from _prosody import ejabberd, prosody, selected_server, xmpp_server  # noqa: F401  (the session's XMPP servers)

SERVER_KINDS = ["memory", "xmpp", "ws"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "server: reaches the session's XMPP server (Prosody, or ejabberd)")
    config.addinivalue_line("markers", "prosody_only(reason): Prosody's behaviour; deselected in an ejabberd run")
    config.addinivalue_line("markers", "ejabberd_only: about the ejabberd launcher; run in the ejabberd run only")
    selected_server()  # a wrong ROSTRA_TEST_SERVER is a usage error before anything runs


def _reaches_server(item: pytest.Item) -> bool:
    if "xmpp_server" in getattr(item, "fixturenames", ()):
        return True
    callspec = getattr(item, "callspec", None)
    return callspec is not None and callspec.params.get("server_kind") in ("xmpp", "ws")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The other server's own tests are deselected (not skipped): a Prosody run needs no ejabberd installed.
    other_only = "prosody_only" if selected_server() == "ejabberd" else "ejabberd_only"
    kept, dropped = [], []
    for item in items:
        (dropped if item.get_closest_marker(other_only) else kept).append(item)
        if _reaches_server(item) and item.get_closest_marker("prosody_only") is None:
            item.add_marker(pytest.mark.server)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(params=SERVER_KINDS)
def server_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server_url(server_kind: str, request: pytest.FixtureRequest) -> Iterator[str]:
    if server_kind == "memory":
        # A server of its own for each test: memory://NAME keys the in-process server registry.
        yield f"memory://test-{uuid.uuid4().hex}"
    else:
        server = request.getfixturevalue("xmpp_server")
        yield server.xmpp_url if server_kind == "xmpp" else server.ws_url


@pytest.fixture
def client_options(server_kind: str, request: pytest.FixtureRequest) -> dict[str, object]:
    """Keyword options for rostra.Client matching ``server_url`` (the CA file for the server's TLS)."""
    if server_kind == "memory":
        return {}
    server = request.getfixturevalue("xmpp_server")
    return {"ca_file": str(server.ca_file)}
