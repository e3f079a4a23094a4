"""The suite's Prosody: one server per test session, started with the same launcher as ``rostra dev-server``.

tests/conftest.py makes the fixture available to every test with ``from _prosody import prosody``.
A missing Prosody is a test failure (with the install command), never a skip.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rostra_xmpp._prosody import ProsodyNotInstalledError, ProsodyServer


@pytest.fixture(scope="session")
def prosody(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProsodyServer]:
    """A running Prosody on 127.0.0.1 (domain ``localhost``, uploads on), stopped at the end of the session."""
    server = ProsodyServer(directory=tmp_path_factory.mktemp("prosody"))
    try:
        server.start()
    except ProsodyNotInstalledError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def xmpp_server(prosody: ProsodyServer) -> ProsodyServer:
    """The session's XMPP server, whichever it is (``prosody`` for now): what server-neutral tests ask for."""
    return prosody
