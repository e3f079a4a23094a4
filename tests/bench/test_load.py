"""bench/load.py's core, small: 5 sessions for 1 s against the session's XMPP server, on xmpp:// and ws://.

The benchmark itself (500 sessions, ``nox -s load``) is not a test; this keeps its counting and checking code
covered by the suite. No wall-clock figure is asserted.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

import rostra
from _cases import CASES, anyio_backend, case  # noqa: F401 - fixtures
from _prosody import XmppServer

pytestmark = pytest.mark.anyio


def _load_module() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "bench" / "load.py"
    spec = importlib.util.spec_from_file_location("rostra_bench_load", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


load = _load_module()


async def test_five_sessions_for_a_second_count_every_operation_and_make_no_error(
    case: tuple[str, str], xmpp_server: XmppServer
) -> None:
    url = xmpp_server.xmpp_url if case[0] == "xmpp" else xmpp_server.ws_url
    result = await load.run_load(url, ca_file=str(xmpp_server.ca_file), sessions=5, duration=1.0)

    assert (result.errors, result.error_messages) == (0, []), result.error_messages
    assert result.connected == 5
    # register and connect once each; every session adds its two ring neighbours and checks them once
    assert [len(result.latencies[step]) for step in load.SETUP_STEPS] == [5, 5, 10, 5]
    assert result.operations == sum(result.counts[kind] for kind in load.OPERATIONS)
    assert all(result.counts[kind] > 0 for kind in load.OPERATIONS)
    assert {kind: len(result.latencies[kind]) for kind in load.OPERATIONS} == result.counts
    summary = result.summary()
    assert summary["operations"] == result.operations
    assert summary["errors"] == 0


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_stale_or_wrong_profile_is_counted_as_an_error() -> None:
    run = load._Run("memory://load-check", sessions=1, duration=1.0, setup_concurrency=1)
    user = run.users[0]
    user.jid = "ada@localhost"
    user.history = [
        {"userJid": user.jid, "userId": "ada", **load._EMPTY, "isAdminBlocked": False, "shareContactDetails": False}
    ]
    user.history.append({**user.history[0], "nickName": "Ada 2"})
    stale = rostra.ProfileResponse(data=rostra.Profile(user_jid=user.jid, user_id="ada"))
    fresh = rostra.ProfileResponse(data=rostra.Profile(user_jid=user.jid, user_id="ada", nick_name="Ada 2"))

    load._check(run, "0", "get_own_profile", fresh, [load._expected(user, 1)])
    load._check(run, "0", "get_own_profile", stale, [load._expected(user, 1)])

    assert run.result.errors == 1
    assert run.result.error_messages[0].startswith('session 0 get_own_profile: got {"userJid":"ada@localhost"')
    assert '"nickName":"Ada 2"' in run.result.error_messages[0].partition("expected")[2]
