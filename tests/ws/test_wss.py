"""wss://: the WebSocket transport over TLS, verified against the server's CA by default, against Prosody."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

import rostra

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_wss_logs_in_with_the_certificate_verified_against_the_ca_file(xmpp_server) -> None:
    async with rostra.Client(xmpp_server.wss_url, ca_file=str(xmpp_server.ca_file)) as sdk:
        registered = (await sdk.register(f"wss{uuid.uuid4().hex}")).data

        assert (await sdk.connect(registered.username, registered.password)).to_dict() == {
            "statusCode": 200,
            "message": "Login Success",
        }
        assert (await sdk.get_current_user_jid()).user_jid == registered.user_jid


async def test_wss_without_the_ca_refuses_the_certificate_with_503(xmpp_server) -> None:
    async with rostra.Client(xmpp_server.wss_url) as sdk:
        with pytest.raises(rostra.UnreachableError) as caught:
            await sdk.register(f"wss{uuid.uuid4().hex}")

    assert caught.value.message == (
        "The server's TLS certificate failed verification for 'localhost': pass the ca_file option with the CA "
        "that signed it (or fix the server's certificate)"
    )


async def test_wss_with_verification_explicitly_off_connects(xmpp_server) -> None:
    async with rostra.Client(xmpp_server.wss_url, verify_tls=False) as sdk:
        registered = (await sdk.register(f"wss{uuid.uuid4().hex}")).data
        assert (await sdk.connect(registered.username, registered.password)).status_code == 200


def test_the_demo_completes_over_wss(xmpp_server) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rostra.cli",
            "demo",
            "--server",
            xmpp_server.wss_url,
            "--ca-file",
            str(xmpp_server.ca_file),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    steps = [json.loads(line) for line in done.stdout.splitlines() if '"step"' in line]
    assert [step["response"]["statusCode"] for step in steps] == [200] * 15
    assert done.returncode == 0
