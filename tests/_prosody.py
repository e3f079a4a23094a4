"""The suite's XMPP servers: one per test session, started with the same launchers as ``rostra dev-server``.

tests/conftest.py makes the fixtures available to every test with ``from _prosody import ...``.
``xmpp_server`` is what server-neutral tests ask for: Prosody, or ejabberd when ``ROSTRA_TEST_SERVER=ejabberd``
(``nox -s tests-ejabberd``). ``prosody`` stays for tests about Prosody itself. A missing server is a test failure
(with the install command), never a skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TypeVar

import pytest

from rostra_xmpp._ejabberd import EjabberdNotInstalledError, EjabberdServer
from rostra_xmpp._prosody import ProsodyNotInstalledError, ProsodyServer

#: The environment variable that picks the server behind ``xmpp_server``: "prosody" (default) or "ejabberd".
SERVER_ENV = "ROSTRA_TEST_SERVER"
SERVERS = ("prosody", "ejabberd")


def selected_server() -> str:
    """The server that ``xmpp_server`` gives this run; a value other than those in SERVERS is a usage error."""
    name = os.environ.get(SERVER_ENV, "prosody").strip().lower() or "prosody"
    if name not in SERVERS:
        raise pytest.UsageError(f"{SERVER_ENV}={name!r}: use one of {', '.join(SERVERS)}")
    return name


_Server = TypeVar("_Server", ProsodyServer, EjabberdServer)


def _running(server: _Server, not_installed: type[Exception]) -> Iterator[_Server]:
    """Start ``server``, yield it, close it; a missing server is a test failure with its install hint, not a skip."""
    try:
        server.start()
    except not_installed as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def prosody(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProsodyServer]:
    """A running Prosody on 127.0.0.1 (domain ``localhost``, uploads on), stopped at the end of the session."""
    yield from _running(ProsodyServer(directory=tmp_path_factory.mktemp("prosody")), ProsodyNotInstalledError)


@pytest.fixture(scope="session")
def ejabberd() -> Iterator[EjabberdServer]:
    """A running ejabberd on 127.0.0.1 (domain ``localhost``, uploads on), stopped at the end of the session.

    Its directory is the launcher's own under /tmp (pytest's is not reachable by the ``ejabberd`` user).
    """
    yield from _running(EjabberdServer(), EjabberdNotInstalledError)


@pytest.fixture(scope="session")
def xmpp_server(request: pytest.FixtureRequest) -> ProsodyServer | EjabberdServer:
    """The session's XMPP server, Prosody or ejabberd (``ROSTRA_TEST_SERVER``): what server-neutral tests ask for."""
    server: ProsodyServer | EjabberdServer = request.getfixturevalue(selected_server())
    return server


#: What ``xmpp_server`` gives (both launchers have the same interface).
XmppServer = ProsodyServer | EjabberdServer
