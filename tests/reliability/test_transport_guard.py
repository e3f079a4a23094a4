"""The transport boundary: an exception that is not a RostraError, escaping a transport call, reaches the caller as
a ServerError (500), is logged with its traceback, and leaves the session usable."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from raising_transport import BROKEN_USER

import rostra
from _entry_points import registered_transports

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def raising_scheme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    entry = {"raises-keyerror": "raising_transport:RaisingTransport"}
    with registered_transports(tmp_path, monkeypatch, "raising-transport-for-tests", entry):
        yield f"raises-keyerror://guard-{uuid.uuid4().hex}"


async def test_a_bare_exception_from_a_transport_is_a_500_logged_with_its_traceback_and_the_session_goes_on(
    raising_scheme: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with rostra.Client(raising_scheme) as sdk:
        me = (await sdk.register("alice")).data
        await sdk.connect(me.username, me.password)
        with caplog.at_level(logging.ERROR, logger="rostra"), pytest.raises(rostra.RostraError) as caught:
            await sdk.get_user_profile(BROKEN_USER)
        after = (await sdk.get_user_profile(me.user_jid)).data.user_jid

    assert (type(caught.value), caught.value.status_code, caught.value.message) == (
        rostra.ServerError,
        500,
        "The transport failed unexpectedly (KeyError): the session is still usable; retry, "
        "and report it to the transport's authors if it persists",
    )
    assert (sdk.state, after) == (rostra.State.CLOSED, me.user_jid)
    logged = [r for r in caplog.records if r.name == "rostra" and r.levelno == logging.ERROR]
    assert [(r.getMessage(), r.exc_info[0] if r.exc_info else None) for r in logged] == [
        ("The transport raised KeyError; reported as a ServerError (500)", KeyError)
    ]
