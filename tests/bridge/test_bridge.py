"""``rostra bridge``: one Client behind JSON lines on stdin/stdout, driven as another runtime would drive it.

The Python side runs the bridge in a subprocess on ``memory://`` (one bridge is one Client, so one user); the
two-user demo flow runs from Node.js (``demo_flow.mjs``) against the suite's Prosody over xmpp:// and ws://,
checking every line against docs/rostra.schema.json with ajv. A missing node or npm is a failure, not a skip.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from rostra._bridge import METHODS, parse_request
from rostra._jsonschema import RESPONSES

HERE = Path(__file__).resolve().parent
LINE_TIMEOUT = 30.0
DEMO_FLOW_STEPS = [
    "register",
    "register",
    "connect",
    "connect",
    "getMetadata",
    "addContact",
    "addContact",
    "getContacts",
    "setUserProfile",
    "getUserProfile",
    "logout",
    "getLastSeen",
    "getCurrentUserJid",
    "logout",
]


class BridgeProcess:
    """``python -m rostra.cli bridge`` in a subprocess; its stdout lines come through a queue (read by a thread)."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rostra.cli", "bridge", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        self._next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def next_line(self) -> dict[str, Any]:
        line = self.lines.get(timeout=LINE_TIMEOUT)
        assert line is not None, "the bridge closed its stdout"
        parsed: dict[str, Any] = json.loads(line)
        return parsed

    def answer(self, request_id: object) -> dict[str, Any]:
        """The next line answering ``request_id``; event lines met on the way are kept in ``events``."""
        while True:
            line = self.next_line()
            if "event" in line:
                self.events.append(line)
            elif line["id"] == request_id:
                return line

    def call(self, method: str, **params: object) -> dict[str, Any]:
        self._next_id += 1
        self.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        return self.answer(self._next_id)

    def finish(self) -> tuple[int, list[dict[str, Any]], str]:
        """Close stdin; the exit status, the lines printed after EOF, and stderr."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        code = self.proc.wait(timeout=LINE_TIMEOUT)
        rest = []
        while (line := self.lines.get(timeout=LINE_TIMEOUT)) is not None:
            rest.append(json.loads(line))
        assert self.proc.stderr is not None
        return code, rest, self.proc.stderr.read()


@pytest.fixture
def bridge() -> Any:
    process = BridgeProcess("--server", f"memory://bridge-{uuid.uuid4().hex}")
    yield process
    if process.proc.poll() is None:
        process.proc.kill()
        process.proc.wait()
    for stream in (process.proc.stdin, process.proc.stdout, process.proc.stderr):
        if stream is not None:
            stream.close()


@pytest.fixture
def connected(bridge: BridgeProcess) -> dict[str, Any]:
    """The register data of a user the bridge has registered and connected."""
    data: dict[str, Any] = bridge.call("register", userIdentifier="Carol", metadata={"plan": "x"})["response"]["data"]
    bridge.call("connect", username=data["username"], password=data["password"])
    return data


# -- the protocol's shape --------------------------------------------------------------------------------------


def test_the_methods_are_the_documented_calls() -> None:
    assert sorted(METHODS) == sorted(RESPONSES)


def test_a_line_with_an_unknown_field_in_params_is_refused_with_its_id() -> None:
    assert parse_request(b'{"id": 7, "method": "getContacts", "params": {"jid": "a@b"}}') == {
        "id": 7,
        "error": {"statusCode": 400, "message": "Bad request: Object contains unknown field `jid` - at `$.params`"},
    }


def test_params_may_be_omitted_for_calls_without_arguments() -> None:
    request = parse_request(b'{"id": "x", "method": "logout"}')

    assert not isinstance(request, dict)
    assert request.id == "x"


def test_a_connect_request_repr_hides_the_password() -> None:
    request = parse_request(b'{"id": 1, "method": "connect", "params": {"username": "u", "password": "s3cret"}}')

    assert "s3cret" not in repr(request)


# -- a single-user flow on memory:// -----------------------------------------------------------------------------


def test_register_answers_the_documented_response_with_the_password(bridge: BridgeProcess) -> None:
    line = bridge.call("register", userIdentifier="Alice")

    data = line["response"]["data"]
    assert line == {
        "id": 1,
        "response": {
            "statusCode": 200,
            "message": "Success",
            "data": {
                "username": "alice",
                "password": data["password"],
                "isProfileUpdated": False,
                "isSandbox": False,
                "userJid": "alice@localhost",
            },
        },
    }
    assert len(data["password"]) == 32


def test_connect_answers_login_success_after_the_connection_events(bridge: BridgeProcess) -> None:
    data = bridge.call("register", userIdentifier="Alice")["response"]["data"]

    line = bridge.call("connect", username=data["username"], password=data["password"])

    assert line == {"id": 2, "response": {"statusCode": 200, "message": "Login Success"}}
    assert bridge.events == [
        {"event": "connection", "status": "CONNECTING", "userJid": ""},
        {"event": "connection", "status": "CONNECTED", "userJid": "alice@localhost"},
    ]


def test_set_user_profile_answers_the_stored_profile_and_emits_its_event(
    bridge: BridgeProcess, connected: dict[str, Any]
) -> None:
    line = bridge.call("setUserProfile", name="Carol C", status="hi", email="carol@example.com")

    profile = {
        "userId": "carol",
        "userJid": "carol@localhost",
        "nickName": "Carol C",
        "image": "",
        "thumbImage": "",
        "status": "hi",
        "mobileNumber": "",
        "email": "carol@example.com",
        "isAdminBlocked": False,
        "shareContactDetails": False,
    }
    assert line["response"] == {"statusCode": 200, "message": "Success", "data": profile}
    assert bridge.events[-1] == {"event": "profile", "data": profile}


def test_set_user_profile_takes_the_sharing_choice(bridge: BridgeProcess, connected: dict[str, Any]) -> None:
    shared = bridge.call("setUserProfile", mobileNumber="+14155552671", shareContactDetails=True)
    kept = bridge.call("setUserProfile", status="still shared")  # left out: the choice is kept
    refused = bridge.call("setUserProfile", shareContactDetails="yes")
    assert (
        shared["response"]["data"]["shareContactDetails"],
        kept["response"]["data"]["shareContactDetails"],
        refused["error"]["statusCode"],
    ) == (True, True, 400)


def test_the_read_calls_answer_their_documented_responses(bridge: BridgeProcess, connected: dict[str, Any]) -> None:
    jid = connected["userJid"]

    assert bridge.call("getCurrentUserJid")["response"] == {"statusCode": 200, "message": "Success", "userJid": jid}
    assert bridge.call("getMetadata")["response"] == {"statusCode": 200, "message": "Success", "data": {"plan": "x"}}
    assert bridge.call("getLastSeen", toUserJid=jid)["response"]["data"] == {"userJid": jid, "seconds": 0}
    assert bridge.call("getContacts")["response"] == {"statusCode": 200, "message": "Success", "data": []}


def test_a_call_that_fails_answers_the_documented_error_with_its_id(bridge: BridgeProcess) -> None:
    line = bridge.call("getCurrentUserJid")

    assert line == {
        "id": 1,
        "error": {"statusCode": 401, "message": "Not connected: call connect(username, password) first"},
    }


def test_a_line_that_is_not_json_is_answered_with_id_null(bridge: BridgeProcess) -> None:
    bridge.send("this is not json")

    line = bridge.next_line()
    assert line["id"] is None
    assert line["error"]["statusCode"] == 400


def test_an_unknown_method_is_answered_with_its_id_and_the_known_methods(bridge: BridgeProcess) -> None:
    bridge.send('{"id": "q", "method": "deleteEverything"}')

    assert bridge.next_line() == {
        "id": "q",
        "error": {
            "statusCode": 400,
            "message": "Bad request: Invalid value 'deleteEverything' - at `$.method`: the method must be one of "
            + ", ".join(METHODS),
        },
    }


def test_a_missing_param_is_answered_400_naming_it(bridge: BridgeProcess) -> None:
    bridge.send('{"id": 3, "method": "addContact", "params": {}}')

    assert bridge.next_line() == {
        "id": 3,
        "error": {"statusCode": 400, "message": "Bad request: Object missing required field `jid` - at `$.params`"},
    }


def test_concurrent_requests_are_each_answered_once_under_their_id(
    bridge: BridgeProcess, connected: dict[str, Any]
) -> None:
    for n in range(20):
        bridge.send(json.dumps({"id": f"r{n}", "method": "getCurrentUserJid"}))

    answers = [bridge.answer(f"r{n}") for n in range(20)]
    assert [line["response"]["userJid"] for line in answers] == [connected["userJid"]] * 20


def test_eof_logs_out_closes_and_exits_0(bridge: BridgeProcess, connected: dict[str, Any]) -> None:
    code, rest, _ = bridge.finish()

    assert rest == [{"event": "connection", "status": "LOGOUT", "userJid": connected["userJid"]}]
    assert code == 0


def test_eof_answers_the_requests_under_way_first(bridge: BridgeProcess, connected: dict[str, Any]) -> None:
    bridge.send('{"id": 9, "method": "getMetadata"}')

    code, rest, _ = bridge.finish()

    assert rest[0] == {"id": 9, "response": {"statusCode": 200, "message": "Success", "data": {"plan": "x"}}}
    assert code == 0


def test_a_bad_ca_file_is_an_error_line_and_exit_1(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    process = BridgeProcess("--server", "memory://", "--ca-file", str(missing))

    code, rest, _ = process.finish()

    assert rest == [
        {
            "id": None,
            "error": {
                "statusCode": 400,
                "message": f"ca_file {str(missing)!r} does not exist: give the PEM file of the server's CA",
            },
        }
    ]
    assert code == 1


# -- the two-user demo flow from Node.js, against Prosody -----------------------------------------------------


@pytest.fixture(scope="session")
def node_modules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temporary node_modules holding ajv@8, installed with npm (never committed)."""
    npm = shutil.which("npm")
    assert npm is not None, "npm is not installed: the bridge test installs ajv with it (apt-get install npm)"
    prefix = tmp_path_factory.mktemp("ajv")
    done = subprocess.run(
        [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--loglevel=error", "ajv@8"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"npm install ajv@8 failed: {done.stderr}"
    return prefix / "node_modules"


@pytest.mark.parametrize("kind", ["xmpp", "ws"])
def test_node_runs_the_demo_flow_through_two_bridges_and_every_line_matches_the_schema(
    kind: str, node_modules: Path, xmpp_server: Any
) -> None:
    node = shutil.which("node")
    assert node is not None, "node is not installed: this test needs Node.js (apt-get install nodejs)"
    server = xmpp_server.xmpp_url if kind == "xmpp" else xmpp_server.ws_url
    done = subprocess.run(
        [
            node,
            str(HERE / "demo_flow.mjs"),
            "--python",
            sys.executable,
            "--node-modules",
            str(node_modules),
            "--server",
            server,
            "--ca-file",
            str(xmpp_server.ca_file),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )

    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["result"] == "passed", f"{summary}\n{done.stderr}"
    assert summary["steps"] == DEMO_FLOW_STEPS
    assert summary["linesValidated"] > len(DEMO_FLOW_STEPS)
    assert done.returncode == 0
