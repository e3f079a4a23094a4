"""rostra-recorder's own tests: Rostra's conformance kit through the recorder, and what the recording holds.

The kit runs on ``record+memory://`` always, and on each real server named in ``ROSTRA_RECORDER_SERVERS``
(``URL CA_FILE`` pairs separated by ``;``, e.g. ``xmpp://127.0.0.1:5222 ca.crt;ws://127.0.0.1:5280/ws ca.crt``).
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import anyio
import pytest

import rostra
from rostra.testing import ConformanceTests, Target


def _servers() -> list[tuple[str, str | None]]:
    spec = os.environ.get("ROSTRA_RECORDER_SERVERS", "")
    pairs = [part.split() for part in spec.split(";") if part.strip()]
    return [(f"record+{url}", ca_file) for url, ca_file in pairs]


TARGETS = [("record+memory://recorder-{run}", None), *_servers()]


class TestThroughTheRecorder(ConformanceTests):
    @pytest.fixture(params=TARGETS, ids=[url.split("://")[0] for url, _ in TARGETS])
    def conformance_target(self, request: pytest.FixtureRequest, tmp_path: Path) -> Target:
        url, ca_file = request.param
        options: dict[str, object] = {"record_to": str(tmp_path / "traffic.jsonl")}
        if ca_file:
            options["ca_file"] = ca_file
        return Target(url.format(run=uuid.uuid4().hex), options=options)


def test_the_recording_holds_each_call_with_its_outcome_and_each_event_and_never_a_password(tmp_path: Path) -> None:
    traffic = tmp_path / "traffic.jsonl"

    async def session() -> str:
        url = f"record+memory://recorder-{uuid.uuid4().hex}"
        async with rostra.Client(url, record_to=str(traffic)) as sdk, rostra.Client(url) as peer_sdk:
            peer = (await peer_sdk.register("bob")).data
            await peer_sdk.connect(peer.username, peer.password)
            user = (await sdk.register("alice")).data
            await sdk.connect(user.username, user.password)
            await sdk.add_contact(peer.user_jid)
            with pytest.raises(rostra.ForbiddenError):
                await sdk.get_last_seen(peer.user_jid)
            await sdk.logout()
            return user.password

    password = anyio.run(session)
    lines = traffic.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert [(r.get("call") or r.get("event"), r.get("outcome")) for r in records] == [
        ("register_account", 200),
        ("open_session", 200),
        ("set_metadata", 200),
        ("close", None),
        ("open_session", 200),
        ("ContactUpdated", None),  # the roster push arrives while add_contact runs, so it is written first
        ("add_contact", 200),
        ("get_last_seen", 403),
        ("close", None),
    ]
    assert records[0] == {"call": "register_account", "username": "alice", "outcome": 200}
    assert password not in traffic.read_text(encoding="utf-8")
