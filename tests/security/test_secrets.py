"""Passwords and SASL payloads never reach logs, reprs or exception texts, on every server kind.

A whole session runs with every logger at DEBUG (the wire logs of aioxmpp included); then the captured records
(messages and tracebacks), the reprs of the Client, its responses and credential store, and the texts of the
AuthenticationError of a wrong password are searched for the secrets.
"""

from __future__ import annotations

import base64
import logging
import re
import socket
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import rostra
from rostra import AuthenticationError, FileCredentialStore, MemoryCredentialStore
from rostra._memory_server import get_server

pytestmark = pytest.mark.anyio

# A SASL element that carries a payload: <auth>, <response>, <challenge> or <success> with text.
SASL_PAYLOAD = re.compile(rb"<(?:[\w-]+:)?(?:auth|response|challenge|success)\b[^>]*>[^<]+</", re.IGNORECASE)
# SCRAM messages (RFC 5802) as text and as base64, wherever they might be shown: the client-first message
# ("n,,n=user,r=..."; base64 "biwsbj0..."), the client-final one with its proof ("c=biws,r=...,p=..."; base64
# "Yz1iaXdz..."), and the server-first one ("r=...,s=SALT,i=N"; base64 "cj0...").
SCRAM_MESSAGE = re.compile(r"n,,n=|c=biws|biwsbj0|Yz1iaXdz|\br=[\w+/=-]{16,},s=[\w+/=]+,i=\d|,p=[\w+/]{20,}=*")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aioxmpp, behind xmpp://, runs on asyncio only


class _Collect(logging.Handler):
    """Keeps every record it sees, formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.format(record))


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    """Every log text of the test, from every logger (root included) at DEBUG."""
    handler = _Collect()
    root = logging.getLogger()
    caplog.set_level(logging.DEBUG)  # the root logger's level, restored after the test
    root.addHandler(handler)
    try:
        yield handler.texts
    finally:
        root.removeHandler(handler)
        handler.texts.extend(caplog.text.splitlines())


def secret_forms(username: str, password: str) -> list[str]:
    """The password as text and in the base64 forms a login could carry (alone and as a PLAIN message)."""
    forms = [password, base64.b64encode(password.encode()).decode()]
    for plain in (f"\0{username}\0{password}", f"{username}@localhost\0{username}\0{password}"):
        forms.append(base64.b64encode(plain.encode()).decode())
    return forms


def leaks(text: str, forms: list[str]) -> list[str]:
    """What of ``forms`` (or of a SASL payload) ``text`` contains."""
    found = [form for form in forms if form in text]
    found += SCRAM_MESSAGE.findall(text)
    found += [match.decode(errors="replace") for match in SASL_PAYLOAD.findall(text.encode(errors="replace"))]
    return found


async def test_a_whole_session_at_debug_logging_shows_no_secret(
    server_url: str, client_options: dict[str, object], all_logs: list[str]
) -> None:
    store = MemoryCredentialStore()
    shown: list[str] = []
    async with rostra.Client(server_url, credential_store=store, **client_options) as sdk:
        registered = await sdk.register(f"s{uuid.uuid4().hex}", {"plan": "gold", "age": 7})
        data = registered.data
        shown.append(repr(registered))
        shown.append(repr(sdk))
        shown.append(repr(await sdk.connect(data.username, data.password)))
        shown.append(repr(sdk))
        shown.append(repr(await sdk.set_user_profile(name="Sam", status="here")))
        shown.append(repr(await sdk.get_user_profile(data.user_jid)))
        shown.append(repr(await sdk.get_last_seen(data.user_jid)))
        shown.append(repr(await sdk.add_contact(f"friend{uuid.uuid4().hex}@{data.user_jid.partition('@')[2]}")))
        shown.append(repr(await sdk.get_contacts()))
        shown.append(repr(await sdk.logout()))
        with pytest.raises(AuthenticationError) as refused:
            await sdk.connect(data.username, data.password + "x")
        shown.append(repr(sdk))
        shown.append(repr(store))
        credentials = store.get("localhost", data.username)
        assert credentials is not None
        shown.append(repr(credentials))
    error = refused.value
    shown += [str(error), repr(error), "".join(traceback.format_exception(error))]
    forms = secret_forms(data.username, data.password) + secret_forms(data.username, data.password + "x")

    assert [text for text in shown if leaks(text, forms)] == []
    assert [text for text in all_logs if leaks(text, forms)] == []


async def test_the_registration_iq_is_muted_in_the_xmpp_wire_log(prosody, all_logs: list[str]) -> None:
    async with rostra.Client(prosody.xmpp_url, ca_file=str(prosody.ca_file)) as sdk:
        await sdk.register(f"s{uuid.uuid4().hex}")
    wire = [text for text in all_logs if text.startswith("rostra_xmpp.aioxmpp.XMLStream DEBUG SENT")]

    assert [text for text in wire if "jabber:iq:register" in text or "<password>" in text] == []
    assert [text for text in wire if "<!-- some bytes omitted -->" in text] != []


def test_a_file_credential_store_shows_no_password(tmp_path: Path) -> None:
    store = FileCredentialStore(tmp_path / "credentials.json")
    password = "pw-" + uuid.uuid4().hex
    store.put("localhost", rostra.Credentials(username="alice", password=password, user_jid="alice@localhost"))
    shown = [repr(store), str(store), repr(store.get("localhost", "alice")), str(store.get("localhost", "alice"))]
    assert [text for text in shown if leaks(text, secret_forms("alice", password))] == []


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts TCP connections and never sends a byte."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield int(listener.getsockname()[1])


URLS = {"xmpp": "xmpp://127.0.0.1:{port}", "ws": "ws://127.0.0.1:{port}/xmpp-websocket"}


@pytest.mark.parametrize("kind", list(URLS))
@pytest.mark.parametrize("why", ["unreachable", "silent"])
async def test_a_failed_connect_shows_no_secret(
    kind: str, why: str, closed_port: int, silent_port: int, all_logs: list[str]
) -> None:
    port = closed_port if why == "unreachable" else silent_port
    password = "pw-" + uuid.uuid4().hex
    expected = rostra.UnreachableError if why == "unreachable" else rostra.RequestTimeoutError
    async with rostra.Client(URLS[kind].format(port=port), connect_timeout=1.0) as sdk:
        with pytest.raises(expected) as failed:
            await sdk.connect("alice", password)
        shown = [repr(sdk), str(failed.value), repr(failed.value), "".join(traceback.format_exception(failed.value))]
    forms = secret_forms("alice", password)
    assert [text for text in shown if leaks(text, forms)] == []
    assert [text for text in all_logs if leaks(text, forms)] == []


async def test_a_failed_connect_on_memory_shows_no_secret(all_logs: list[str]) -> None:
    name = f"secrets-{uuid.uuid4().hex}"
    get_server(name).reachable = False
    password = "pw-" + uuid.uuid4().hex
    async with rostra.Client(f"memory://{name}") as sdk:
        with pytest.raises(rostra.UnreachableError) as failed:
            await sdk.connect("alice", password)
        shown = [repr(sdk), str(failed.value), repr(failed.value), "".join(traceback.format_exception(failed.value))]
    forms = secret_forms("alice", password)
    assert [text for text in shown if leaks(text, forms)] == []
    assert [text for text in all_logs if leaks(text, forms)] == []
