"""Options are checked when the Client is built; concurrent profile updates lose nothing; connect() checks its input."""

from __future__ import annotations

import os
import uuid

import anyio
import pytest

import rostra

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"connect_timeout": 0}, "connect_timeout must be a positive number of seconds, not 0"),
        ({"request_timeout": -1}, "request_timeout must be a positive number of seconds, not -1"),
        ({"request_timeout": "abc"}, "request_timeout must be a positive number of seconds, not 'abc'"),
        ({"request_timeout": True}, "request_timeout must be a positive number of seconds, not True"),
        # Over a day is a mistake, and overflowed aioxmpp's timedelta (a 503 "Cannot reach" on xmpp://).
        ({"connect_timeout": 1e300}, "connect_timeout must be from 0 to 86400 seconds, not 1e+300"),
        ({"request_timeout": 86_401}, "request_timeout must be from 0 to 86400 seconds, not 86401"),
        ({"image_limits": "x"}, "image_limits must be a rostra.ImageLimits(...)"),
        ({"verify_tls": None}, "verify_tls must be True or False, not None"),
        ({"verify_tls": "false"}, "verify_tls must be True or False, not 'false'"),
        ({"trial": "yes"}, "trial must be True or False, not 'yes'"),
        ({"license_key": 5}, "license_key must be a string or None (open servers need none)"),
        (
            {"credential_store": "x"},
            "credential_store must be a rostra.CredentialStore (e.g. rostra.FileCredentialStore(path))",
        ),
        ({"domain": "bad domain"}, "domain 'bad domain' is not a valid domain name: give e.g. 'chat.example.com'"),
        ({"domain": ""}, "domain must be the XMPP domain of the server's users, e.g. 'chat.example.com'"),
        ({"domain": "a@b"}, "domain 'a@b' is not a valid domain name: give e.g. 'chat.example.com'"),
        (
            {"ca_file": "/nonexistent/ca.pem"},
            "ca_file '/nonexistent/ca.pem' does not exist: give the PEM file of the server's CA",
        ),
        (
            {"ca_file": os.devnull},
            f"ca_file {os.devnull!r} holds no usable PEM certificate: give the PEM file of the server's CA",
        ),
    ],
)
async def test_a_bad_option_is_400_before_anything_is_sent(
    server_url: str, options: dict[str, object], message: str
) -> None:
    with pytest.raises(rostra.InvalidInputError) as caught:
        rostra.Client(server_url, **options)

    assert (caught.value.status_code, caught.value.message) == (400, message)


async def test_a_misspelt_option_is_refused_naming_it(server_url: str, server_kind: str) -> None:
    with pytest.raises(rostra.InvalidInputError) as caught:
        rostra.Client(server_url, ca_flie="ca.pem")

    accepted = "allow_insecure_ws, allow_plain, max_message_bytes, ping_interval" if server_kind != "memory" else "none"
    assert caught.value.message == (
        f"Unknown option(s) ca_flie for {server_kind}:// (this transport's own options: {accepted}): check the spelling"
    )


@pytest.mark.parametrize(("username", "password"), [("", "secret"), ("alice", ""), (None, "secret")])
async def test_connect_without_credentials_is_400_and_changes_nothing(make_client, username, password) -> None:
    sdk = await make_client()

    with pytest.raises(rostra.InvalidInputError):
        await sdk.connect(username, password)

    assert (sdk.state, sdk.status) == (rostra.State.IDLE, None)


async def test_concurrent_profile_updates_keep_every_change(make_user) -> None:
    user = await make_user()
    await user.sdk.set_user_profile(name="N0", status="S0")

    async with anyio.create_task_group() as group:
        group.start_soon(lambda: user.sdk.set_user_profile(name="N1"))
        group.start_soon(lambda: user.sdk.set_user_profile(status="S2"))

    profile = (await user.sdk.get_user_profile(user.jid)).data
    assert (profile.nick_name, profile.status) == ("N1", "S2")


async def test_an_event_renders_its_documented_json(make_user) -> None:
    user = await make_user()
    async with user.sdk.events() as stream:
        await user.sdk.set_user_profile(name="Json")
        event = await stream.receive()

    assert event.to_json() == rostra.ProfileEvent(data=(await user.sdk.get_user_profile(user.jid)).data).to_json()
    assert event.to_dict()["event"] == "profile"
    assert event.to_dict()["data"]["nickName"] == "Json"


async def test_credentials_stored_through_one_transport_are_found_through_another(xmpp_server, tmp_path) -> None:
    """An account is its JID: switching the URL (xmpp:// to ws://, 127.0.0.1 to localhost) keeps its credentials."""
    store = rostra.FileCredentialStore(tmp_path / "credentials.json")
    identifier = f"Switch{uuid.uuid4().hex}"
    async with rostra.Client(xmpp_server.xmpp_url, ca_file=str(xmpp_server.ca_file), credential_store=store) as sdk:
        first = (await sdk.register(identifier)).data

    async with rostra.Client(xmpp_server.ws_url, credential_store=store) as sdk:
        again = (await sdk.register(identifier)).data
        assert (await sdk.connect(again.username, again.password)).status_code == 200

    assert (again.username, again.password, again.user_jid) == (first.username, first.password, first.user_jid)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ping_interval": 0}, "The ping_interval option must be a positive number"),
        ({"max_message_bytes": "big"}, "The max_message_bytes option must be a positive number"),
        ({"allow_plain": "no"}, "The allow_plain option must be True or False, not 'no'"),
    ],
)
async def test_the_carrier_options_are_checked_alike_on_both_xmpp_carriers(
    xmpp_server, options: dict[str, object], message: str
) -> None:
    for url in (xmpp_server.xmpp_url, xmpp_server.ws_url):
        with pytest.raises(rostra.InvalidInputError) as caught:
            rostra.Client(url, **options)
        assert caught.value.message == message


async def test_a_program_with_websocket_options_moves_to_xmpp_by_changing_the_url_only(xmpp_server) -> None:
    options = {"ca_file": str(xmpp_server.ca_file), "ping_interval": 10, "max_message_bytes": 2_000_000}
    for url in (xmpp_server.ws_url, xmpp_server.xmpp_url):
        async with rostra.Client(url, **options) as sdk:
            registered = (await sdk.register(f"Move{uuid.uuid4().hex}")).data
            assert (await sdk.connect(registered.username, registered.password)).status_code == 200


async def test_a_transport_whose_close_never_returns_does_not_hang_register_logout_or_aclose(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import rostra.memory

    async def hang(self: object) -> None:
        await anyio.sleep_forever()

    monkeypatch.setattr(rostra.memory.MemorySession, "close", hang)
    sdk = rostra.Client(f"memory://hang-{uuid.uuid4().hex}", connect_timeout=0.2)
    with anyio.fail_after(10):  # without the limit, each of these would wait forever
        async with sdk:
            user = (await sdk.register("alice")).data  # its short session's close is given up after 0.2 s
            await sdk.connect(user.username, user.password)
            logged_out = await sdk.logout()
    assert (user.username, logged_out.message, sdk.state) == ("alice", "Logout Success", rostra.State.CLOSED)
