"""rostra-ws stands on its own: installed with the core alone it pulls in no aioxmpp, and the demo runs on it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ws_only_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("ws-only") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    packages = [str(ROOT / "packages" / name) for name in ("core", "xmpp-common", "transport-ws")]
    subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "-c",
            str(ROOT / "constraints.txt"),
            *packages,
        ],
        check=True,
        capture_output=True,
    )
    return venv


def test_installing_the_core_and_rostra_ws_leaves_aioxmpp_out(ws_only_venv: Path) -> None:
    done = subprocess.run(
        [str(ws_only_venv / "bin" / "python"), "-m", "pip", "show", "aioxmpp"], capture_output=True, text=True
    )

    assert done.returncode == 1
    assert "not found" in done.stderr.lower()


def test_the_demo_runs_over_ws_from_that_venv(ws_only_venv: Path, xmpp_server) -> None:
    done = subprocess.run(
        [
            str(ws_only_venv / "bin" / "rostra"),
            "demo",
            "--server",
            xmpp_server.ws_url,
            "--ca-file",
            str(xmpp_server.ca_file),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )

    steps = [json.loads(line) for line in done.stdout.splitlines() if '"step"' in line]
    assert [step["response"]["statusCode"] for step in steps] == [200] * 15
    assert done.returncode == 0
