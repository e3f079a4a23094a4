"""The ``rostra`` command: the demo (the main job) and one subcommand per operation, on every server kind."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from rostra.cli import main

DEMO_STEPS = [
    "register",
    "register",
    "connect",
    "connect",
    "getMetadata",
    "addContact",
    "addContact",
    "getContacts",
    "setUserProfile",
    "setUserProfile",
    "getUserProfile",
    "logout",
    "getLastSeen",
    "getCurrentUserJid",
    "logout",
]


def _connection_args(server_url: str, client_options: dict[str, object]) -> list[str]:
    args = ["--server", server_url]
    if "ca_file" in client_options:
        args += ["--ca-file", str(client_options["ca_file"])]
    return args


def _run_demo(*argv: str) -> tuple[int, list[dict[str, Any]]]:
    """``rostra demo`` in a subprocess, as a user runs it; its JSON lines parsed."""
    done = subprocess.run(
        [sys.executable, "-m", "rostra.cli", "demo", *argv], capture_output=True, text=True, timeout=120, check=False
    )
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines()]


@pytest.fixture
def demo_run(server_url: str, client_options: dict[str, object]) -> tuple[int, list[dict[str, Any]]]:
    return _run_demo(*_connection_args(server_url, client_options))


def test_the_demo_completes_every_step_and_exits_0(demo_run: tuple[int, list[dict[str, Any]]]) -> None:
    code, lines = demo_run

    steps = [line for line in lines if "step" in line]
    assert [line["step"] for line in steps] == DEMO_STEPS
    assert [line["response"]["statusCode"] for line in steps] == [200] * len(DEMO_STEPS)
    assert code == 0


def test_the_demo_shows_the_profile_events_the_second_user_receives(
    demo_run: tuple[int, list[dict[str, Any]]],
) -> None:
    _, lines = demo_run

    alice, bob = (line["response"]["data"]["userJid"] for line in lines if line.get("step") == "register")
    events = [line for line in lines if line.get("event") == "profile"]
    assert [(event["receivedBy"], event["data"]["userJid"]) for event in events] == [(bob, alice), (bob, alice)]
    stored = [line["response"]["data"] for line in lines if line.get("step") == "setUserProfile"]
    assert [event["data"] for event in events] == stored


def test_the_demo_never_prints_a_password(demo_run: tuple[int, list[dict[str, Any]]]) -> None:
    _, lines = demo_run

    passwords = {line["response"]["data"]["password"] for line in lines if line.get("step") == "register"}
    assert passwords == {"***"}


def test_the_demo_against_an_unreachable_server_exits_1() -> None:
    code, lines = _run_demo("--server", "xmpp://127.0.0.1:9")

    assert lines[0]["step"] == "register"
    assert lines[0]["error"]["statusCode"] == 503
    assert code == 1


def test_the_demo_with_a_ca_file_that_is_no_certificate_says_so_before_connecting() -> None:
    code, lines = _run_demo("--server", "xmpp://127.0.0.1:9", "--ca-file", os.devnull)

    assert lines == [
        {
            "statusCode": 400,
            "message": f"ca_file {os.devnull!r} holds no usable PEM certificate: give the PEM file of the server's CA",
        }
    ]
    assert code == 1


# -- one subcommand per operation (run in this process: memory:// servers live in one process) --------------


class Cli:
    def __init__(self, args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
        self.args = args
        self.capsys = capsys

    def __call__(self, *argv: str) -> tuple[int, list[dict[str, Any]]]:
        self.capsys.readouterr()
        code = main([*self.args, *argv])
        return code, [json.loads(line) for line in self.capsys.readouterr().out.splitlines()]


@pytest.fixture
def credentials(tmp_path: Path) -> Path:
    return tmp_path / "config" / "credentials.json"


@pytest.fixture(params=["xmpp", "ws"])
def cli(request: pytest.FixtureRequest, credentials: Path, capsys: pytest.CaptureFixture[str], xmpp_server: Any) -> Cli:
    """The CLI against the suite's XMPP server (the per-operation commands need a server that outlives a process).

    ``xmpp_server`` is asked for by name, so the tests using this fixture are marked ``server`` (tests/conftest.py).
    """
    url = xmpp_server.xmpp_url if request.param == "xmpp" else xmpp_server.ws_url
    return Cli(["--server", url, "--ca-file", str(xmpp_server.ca_file), "--credentials", str(credentials)], capsys)


@pytest.mark.parametrize(
    "argv", [["register", "Alice"], ["whoami", "--user", "alice"], ["profile", "get", "--user", "a", "b@localhost"]]
)
def test_the_per_operation_commands_refuse_memory_and_say_why(
    argv: list[str], credentials: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--server", "memory://", "--credentials", str(credentials), *argv])

    assert code == 2
    assert capsys.readouterr().err == (
        f"rostra: `rostra {argv[0]}` needs a server that outlives one command: memory:// lives inside one process. "
        "Start one with `rostra dev-server` and pass --server xmpp://... --ca-file ... "
        "(`rostra demo` runs the whole API on memory:// in one process)\n"
    )
    assert not credentials.exists()


@pytest.fixture
def registered(cli: Cli) -> str:
    """The username of a user registered through the CLI."""
    identifier = f"Cli{uuid.uuid4().hex}"
    code, _ = cli("register", identifier, "--meta", "plan=free", "--meta", "seats=3")
    assert code == 0
    return identifier.lower()


def test_register_prints_the_response_without_the_password(cli: Cli) -> None:
    identifier = f"Cli{uuid.uuid4().hex}"

    code, [line] = cli("register", identifier)

    assert code == 0
    assert line["data"]["username"] == identifier.lower()
    assert line["data"]["password"] == "***"


def test_register_keeps_the_credentials_in_a_0600_file(cli: Cli, credentials: Path, registered: str) -> None:
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert registered in credentials.read_text()


def test_connect_checks_the_stored_credentials(cli: Cli, registered: str) -> None:
    assert cli("connect", "--user", registered) == (0, [{"statusCode": 200, "message": "Login Success"}])


def test_whoami_prints_the_bare_jid(cli: Cli, registered: str) -> None:
    assert cli("whoami", "--user", registered) == (
        0,
        [{"statusCode": 200, "message": "Success", "userJid": f"{registered}@localhost"}],
    )


def test_metadata_prints_what_register_stored(cli: Cli, registered: str) -> None:
    assert cli("metadata", "--user", registered) == (
        0,
        [{"statusCode": 200, "message": "Success", "data": {"plan": "free", "seats": 3}}],
    )


def test_profile_set_then_get(cli: Cli, registered: str) -> None:
    code, [stored] = cli("profile", "set", "--user", registered, "--name", "Cli User", "--status", "via the CLI")
    assert code == 0

    assert cli("profile", "get", "--user", registered, f"{registered}@localhost") == (0, [stored])
    assert (stored["data"]["nickName"], stored["data"]["status"]) == ("Cli User", "via the CLI")


def test_a_refused_profile_value_prints_the_error_and_exits_1(cli: Cli, registered: str) -> None:
    code, [line] = cli("profile", "set", "--user", registered, "--mobile-number", "12345")

    assert code == 1
    assert line["statusCode"] == 400


def test_contacts_add_and_list(cli: Cli, registered: str) -> None:
    other = f"Cli{uuid.uuid4().hex}"
    cli("register", other)

    assert cli("contacts", "add", "--user", registered, f"{other.lower()}@localhost") == (
        0,
        [{"statusCode": 200, "message": "Success"}],
    )
    code, [listing] = cli("contacts", "list", "--user", registered)
    assert code == 0
    assert [contact["userJid"] for contact in listing["data"]] == [f"{other.lower()}@localhost"]


def test_last_seen_of_a_non_contact_is_403(cli: Cli, registered: str) -> None:
    other = f"Cli{uuid.uuid4().hex}"
    cli("register", other)

    code, [line] = cli("last-seen", "--user", registered, f"{other.lower()}@localhost")

    assert (code, line["statusCode"]) == (1, 403)


def test_an_operation_for_an_unknown_user_says_to_register(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    code = main([*cli.args, "whoami", "--user", "nobody"])

    assert code == 2
    assert "run `rostra register nobody`" in capsys.readouterr().err
