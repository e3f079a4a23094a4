"""The example third-party transport (examples/rostra-recorder): installed from its own pyproject, selected by its
URL scheme through its entry point, and checked by the conformance kit in its own test suite, on memory:// and on
the suite's XMPP server over xmpp:// and ws://."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rostra-recorder"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """rostra-recorder installed (without dependencies: Rostra is already here) into a directory of its own."""
    target = tmp_path_factory.mktemp("recorder-site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(EXAMPLE)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return target


def _run(installed: Path, code_or_args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *code_or_args],
        cwd=EXAMPLE,
        env={**os.environ, "PYTHONPATH": str(installed), **env},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_rostra_finds_the_installed_transport_by_its_url_scheme(installed: Path) -> None:
    code = (
        "import rostra._transport as t, importlib.metadata as m; "
        "cls = t.load_transport('record+ws://127.0.0.1:1/ws'); "
        "print(cls.__module__, cls.__name__, m.version('rostra-recorder'), cls.__module__ in __import__('sys').modules)"
    )
    done = _run(installed, ["-c", code])
    assert (done.returncode, done.stdout.strip()) == (0, "rostra_recorder RecordingTransport 0.1.0 True"), done.stderr
    found = _run(installed, ["-c", "import rostra_recorder; print(rostra_recorder.__file__)"])
    assert Path(found.stdout.strip()).is_relative_to(installed), found.stdout


def test_the_conformance_kit_passes_on_the_example_transport(installed: Path, xmpp_server: object) -> None:
    ca_file = str(xmpp_server.ca_file)  # type: ignore[attr-defined]
    servers = f"{xmpp_server.xmpp_url} {ca_file};{xmpp_server.ws_url} {ca_file}"  # type: ignore[attr-defined]
    done = _run(installed, ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA"], ROSTRA_RECORDER_SERVERS=servers)
    summary = done.stdout.strip().splitlines()[-1]
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    # 2 kit tests x (record+memory, record+xmpp, record+ws) + the recording test
    assert re.fullmatch(r"=* ?7 passed in [\d.]+s ?=*", summary), summary
    for target in ("record+memory", "record+xmpp", "record+ws"):
        for test in ("test_matches_the_model", "test_state_sweep"):
            assert f"PASSED tests/test_recorder.py::TestThroughTheRecorder::{test}[{target}]" in done.stdout
