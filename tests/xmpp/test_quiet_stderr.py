"""Failures over xmpp:// print nothing on stderr: no asyncio "never retrieved" or "Exception in callback" reports.

Each case runs in a subprocess of its own, so whatever asyncio prints when the loop ends or futures are collected
is seen; stdout carries the outcome the test expects.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

from _prosody import XmppServer


def _dead_port() -> int:
    """A port on 127.0.0.1 where nothing listens (the kernel's pick, released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True, timeout=120
    )


def _run_cli(port: int, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``rostra`` with ``args`` against ``xmpp://127.0.0.1:port``, credentials kept under ``tmp_path``."""
    command = ["--server", f"xmpp://127.0.0.1:{port}", "--credentials", str(tmp_path / "credentials.json"), *args]
    return subprocess.run([sys.executable, "-m", "rostra.cli", *command], capture_output=True, text=True, timeout=60)


def _unreachable(port: int) -> dict[str, object]:
    return {
        "statusCode": 503,
        "message": f"Cannot reach the XMPP server at 127.0.0.1:{port} (ConnectionRefusedError): check the server "
        "URL and that the server is running",
    }


def test_cli_register_on_a_dead_port_prints_only_the_503(tmp_path: Path) -> None:
    port = _dead_port()
    result = _run_cli(port, tmp_path, "register", "Dave")
    assert (result.returncode, json.loads(result.stdout), result.stderr) == (1, _unreachable(port), "")


def test_the_demo_on_a_dead_port_prints_nothing_on_stderr(tmp_path: Path) -> None:
    port = _dead_port()
    result = _run_cli(port, tmp_path, "demo")
    first = json.loads(result.stdout.splitlines()[0])
    assert (result.returncode, first, result.stderr) == (1, {"step": "register", "error": _unreachable(port)}, "")


CONNECT_AFTER_THE_SERVER_DIED = """
    import sys
    from pathlib import Path

    import anyio

    import rostra
    from rostra_xmpp._prosody import ProsodyServer

    async def main(server):
        async with rostra.Client(server.xmpp_url, ca_file=str(server.ca_file)) as first:
            data = (await first.register("dave")).data
            await first.connect(data.username, data.password)
            server.kill()
            with anyio.fail_after(10):
                while first.state.value == "connected":
                    await anyio.sleep(0.05)
        async with rostra.Client(server.xmpp_url, ca_file=str(server.ca_file)) as second:
            try:
                await second.connect(data.username, data.password)
            except rostra.RostraError as error:
                print(error.status_code)

    with ProsodyServer(directory=Path(sys.argv[1]), upload=False) as server:
        anyio.run(main, server)
"""


def test_connecting_again_after_the_server_died_prints_nothing_on_stderr(tmp_path: Path) -> None:
    result = _run_python(CONNECT_AFTER_THE_SERVER_DIED, str(tmp_path))
    assert (result.returncode, result.stdout, result.stderr) == (0, "503\n", "")


UPLOAD_TIMEOUT = """
    import io
    import sys
    import uuid

    import anyio
    from PIL import Image

    import rostra

    async def main(url, ca_file):
        image = io.BytesIO()
        Image.new("RGB", (64, 64), (1, 2, 3)).save(image, format="PNG")
        async with rostra.Client(url, ca_file=ca_file) as sdk:
            data = (await sdk.register("erin" + uuid.uuid4().hex)).data
            await sdk.connect(data.username, data.password)
        async with rostra.Client(url, ca_file=ca_file, request_timeout=0.005) as sdk:
            await sdk.connect(data.username, data.password)
            try:
                await sdk.set_user_profile(image=image.getvalue())
            except rostra.RostraError as error:
                print(error.status_code)

    anyio.run(main, sys.argv[1], sys.argv[2])
"""


def test_a_timeout_during_upload_discovery_prints_only_the_408(xmpp_server: XmppServer) -> None:
    result = _run_python(UPLOAD_TIMEOUT, xmpp_server.xmpp_url, str(xmpp_server.ca_file))
    assert (result.returncode, result.stdout, result.stderr) == (0, "408\n", "")


REQUESTS_CUT_BY_THE_DEADLINE = """
    import sys
    import uuid

    import anyio

    import rostra

    async def main(url, ca_file):
        async with rostra.Client(url, ca_file=ca_file) as sdk:
            data = (await sdk.register("fay" + uuid.uuid4().hex)).data
        outcomes = set()
        for _ in range(10):
            async with rostra.Client(url, ca_file=ca_file, request_timeout=0.0005) as sdk:
                await sdk.connect(data.username, data.password)
                for _ in range(5):
                    try:
                        await sdk.get_user_profile(data.user_jid)
                        outcomes.add(200)
                    except rostra.RostraError as error:
                        outcomes.add(error.status_code)
        print(408 in outcomes)

    anyio.run(main, sys.argv[1], sys.argv[2])
"""


def test_requests_cut_by_the_request_timeout_print_nothing_on_stderr(xmpp_server: XmppServer) -> None:
    result = _run_python(REQUESTS_CUT_BY_THE_DEADLINE, xmpp_server.xmpp_url, str(xmpp_server.ca_file))
    assert (result.returncode, result.stdout, result.stderr) == (0, "True\n", "")
