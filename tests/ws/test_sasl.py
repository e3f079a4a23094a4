"""The sans-IO SASL negotiation against a scramp server in the test: choice, SCRAM both ways, every refusal."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import scramp
from lxml import etree

import rostra
from rostra_ws._errors import StreamProtocolError
from rostra_ws._sasl import SaslNegotiation
from rostra_xmpp_common.namespaces import NS_SASL

PASSWORD = "correct horse battery"


def sasl(name: str, data: bytes | None = None, *children: str) -> Any:
    element = etree.Element(f"{{{NS_SASL}}}{name}", nsmap={None: NS_SASL})
    if data is not None:
        element.text = base64.b64encode(data).decode()
    for child in children:
        etree.SubElement(element, f"{{{NS_SASL}}}{child}")
    return element


def payload(element: Any) -> str:
    return base64.b64decode(element.text or "").decode()


class Server:
    """A SCRAM server built on scramp's ScramMechanism, fed the client's elements."""

    def __init__(self, mechanism: str, password: str = PASSWORD) -> None:
        scram = scramp.ScramMechanism(mechanism)
        info = scram.make_auth_info(password, iteration_count=4096)
        self.server = scram.make_server(lambda _username: info)

    def first(self, auth: Any) -> Any:
        self.server.set_client_first(payload(auth))
        return sasl("challenge", self.server.get_server_first().encode())

    def final(self, response: Any) -> bytes:
        self.server.set_client_final(payload(response))
        return str(self.server.get_server_final()).encode()


def negotiate_until_final(mechanism: str) -> tuple[SaslNegotiation, bytes]:
    negotiation = SaslNegotiation("alice", PASSWORD, [mechanism], plain_allowed=False)
    server = Server(mechanism)
    response = negotiation.receive(server.first(negotiation.start()))
    return negotiation, server.final(response)


# -- choice ------------------------------------------------------------------------------------------------


def test_scram_sha_256_is_preferred() -> None:
    offered = ["PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"]
    assert SaslNegotiation("alice", PASSWORD, offered, plain_allowed=True).mechanism == "SCRAM-SHA-256"


def test_scram_sha_1_when_sha_256_is_not_offered() -> None:
    assert SaslNegotiation("alice", PASSWORD, ["PLAIN", "SCRAM-SHA-1"], plain_allowed=True).mechanism == "SCRAM-SHA-1"


def test_plain_when_allowed_and_nothing_better() -> None:
    assert SaslNegotiation("alice", PASSWORD, ["PLAIN"], plain_allowed=True).mechanism == "PLAIN"


def test_plain_refused_unless_allowed() -> None:
    with pytest.raises(rostra.ServerError) as caught:
        SaslNegotiation("alice", PASSWORD, ["PLAIN"], plain_allowed=False)
    assert caught.value.status_code == 500
    assert caught.value.message == (
        "no SASL mechanism both sides support: the server offers PLAIN; Rostra speaks SCRAM-SHA-256, SCRAM-SHA-1 "
        "(PLAIN only over TLS or when allowed on loopback)"
    )


def test_no_mechanism_offered_is_a_server_error() -> None:
    with pytest.raises(rostra.ServerError, match="the server offers none"):
        SaslNegotiation("alice", PASSWORD, [], plain_allowed=True)


def test_channel_binding_variants_are_not_chosen() -> None:
    with pytest.raises(rostra.ServerError, match="SCRAM-SHA-1-PLUS"):
        SaslNegotiation("alice", PASSWORD, ["SCRAM-SHA-1-PLUS"], plain_allowed=False)


def test_username_that_saslprep_refuses_is_invalid_input() -> None:
    with pytest.raises(rostra.InvalidInputError, match="SASLprep"):
        SaslNegotiation("al\u0007ice", PASSWORD, ["SCRAM-SHA-1"], plain_allowed=False)


def test_repr_never_shows_the_password() -> None:
    negotiation = SaslNegotiation("alice", PASSWORD, ["PLAIN"], plain_allowed=True)
    negotiation.start()
    assert repr(negotiation) == "SaslNegotiation(mechanism='PLAIN', step='sent-first')"


# -- PLAIN -------------------------------------------------------------------------------------------------


def test_plain_auth_carries_the_credentials() -> None:
    auth = SaslNegotiation("alice", PASSWORD, ["PLAIN"], plain_allowed=True).start()
    assert (auth.tag, auth.get("mechanism")) == (f"{{{NS_SASL}}}auth", "PLAIN")
    assert base64.b64decode(auth.text) == b"\0alice\0" + PASSWORD.encode()


def test_plain_success_completes() -> None:
    negotiation = SaslNegotiation("alice", PASSWORD, ["PLAIN"], plain_allowed=True)
    negotiation.start()
    assert negotiation.receive(sasl("success")) is None
    assert negotiation.done is True


def test_plain_challenge_is_a_protocol_error() -> None:
    negotiation = SaslNegotiation("alice", PASSWORD, ["PLAIN"], plain_allowed=True)
    negotiation.start()
    with pytest.raises(StreamProtocolError, match="challenge to PLAIN"):
        negotiation.receive(sasl("challenge", b"x"))


# -- SCRAM -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-1"])
def test_scram_auth_names_the_mechanism(mechanism: str) -> None:
    auth = SaslNegotiation("alice", PASSWORD, [mechanism], plain_allowed=False).start()
    assert auth.get("mechanism") == mechanism
    assert payload(auth).startswith("n,,n=alice,r=")


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-1"])
def test_scram_with_server_final_in_success_completes(mechanism: str) -> None:
    negotiation, final = negotiate_until_final(mechanism)
    assert negotiation.receive(sasl("success", final)) is None
    assert negotiation.done is True


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-1"])
def test_scram_with_server_final_in_a_challenge_answers_empty_then_completes(mechanism: str) -> None:
    negotiation, final = negotiate_until_final(mechanism)
    response = negotiation.receive(sasl("challenge", final))
    assert etree.tostring(response) == b'<response xmlns="urn:ietf:params:xml:ns:xmpp-sasl"/>'
    assert negotiation.receive(sasl("success")) is None
    assert negotiation.done is True


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-1"])
def test_scram_wrong_server_signature_is_a_protocol_error(mechanism: str) -> None:
    negotiation, _ = negotiate_until_final(mechanism)
    with pytest.raises(StreamProtocolError, match="signature"):
        negotiation.receive(sasl("success", b"v=" + base64.b64encode(b"\0" * 32)))
    assert negotiation.done is False


def test_scram_success_without_server_final_is_a_protocol_error() -> None:
    negotiation, _ = negotiate_until_final("SCRAM-SHA-1")
    with pytest.raises(StreamProtocolError, match="without proving"):
        negotiation.receive(sasl("success"))


def test_scram_success_before_any_challenge_is_a_protocol_error() -> None:
    negotiation = SaslNegotiation("alice", PASSWORD, ["SCRAM-SHA-1"], plain_allowed=False)
    negotiation.start()
    with pytest.raises(StreamProtocolError, match="without proving"):
        negotiation.receive(sasl("success"))


def test_scram_iteration_count_over_the_cap_is_refused_before_deriving() -> None:
    negotiation = SaslNegotiation("alice", PASSWORD, ["SCRAM-SHA-1"], plain_allowed=False)
    nonce = payload(negotiation.start()).split("r=")[1]
    server_first = f"r={nonce}srv,s={base64.b64encode(b'salt').decode()},i=999999999"
    with pytest.raises(StreamProtocolError, match="iteration count"):
        negotiation.receive(sasl("challenge", server_first.encode()))


def test_scram_server_nonce_not_extending_ours_is_a_protocol_error() -> None:
    negotiation = SaslNegotiation("alice", PASSWORD, ["SCRAM-SHA-1"], plain_allowed=False)
    negotiation.start()
    with pytest.raises(StreamProtocolError, match="SCRAM message is invalid"):
        negotiation.receive(sasl("challenge", b"r=other,s=c2FsdA==,i=4096"))


def test_challenge_that_is_not_base64_is_a_protocol_error() -> None:
    negotiation = SaslNegotiation("alice", PASSWORD, ["SCRAM-SHA-1"], plain_allowed=False)
    negotiation.start()
    challenge = sasl("challenge")
    challenge.text = "not base64!"
    with pytest.raises(StreamProtocolError, match="not base64"):
        negotiation.receive(challenge)


# -- failure and misuse ------------------------------------------------------------------------------------


def test_not_authorized_failure_is_the_plain_authentication_error() -> None:
    negotiation = SaslNegotiation("alice", PASSWORD, ["SCRAM-SHA-1"], plain_allowed=False)
    negotiation.start()
    with pytest.raises(rostra.AuthenticationError) as caught:
        negotiation.receive(sasl("failure", None, "not-authorized"))
    assert caught.value.message == rostra.AuthenticationError.default_message
    assert caught.value.status_code == 401


def test_other_failure_names_its_condition() -> None:
    negotiation = SaslNegotiation("alice", PASSWORD, ["PLAIN"], plain_allowed=True)
    negotiation.start()
    with pytest.raises(rostra.AuthenticationError) as caught:
        negotiation.receive(sasl("failure", None, "temporary-auth-failure"))
    assert caught.value.message == (
        "The server refused the login (SASL failed: temporary-auth-failure): check the credentials"
    )


def test_failure_text_never_holds_the_password_or_the_payloads() -> None:
    negotiation = SaslNegotiation("alice", PASSWORD, ["PLAIN"], plain_allowed=True)
    auth = negotiation.start()
    failure = sasl("failure", None, "aborted")
    etree.SubElement(failure, f"{{{NS_SASL}}}text").text = f"echo {auth.text} {PASSWORD}"
    with pytest.raises(rostra.AuthenticationError) as caught:
        negotiation.receive(failure)
    assert PASSWORD not in str(caught.value)
    assert auth.text not in str(caught.value)
    assert PASSWORD not in repr(caught.value)


def test_element_after_failure_is_a_protocol_error() -> None:
    negotiation = SaslNegotiation("alice", PASSWORD, ["PLAIN"], plain_allowed=True)
    negotiation.start()
    with pytest.raises(rostra.AuthenticationError):
        negotiation.receive(sasl("failure", None, "not-authorized"))
    with pytest.raises(StreamProtocolError, match="after the login ended"):
        negotiation.receive(sasl("success"))


def test_element_after_success_is_a_protocol_error() -> None:
    negotiation = SaslNegotiation("alice", PASSWORD, ["PLAIN"], plain_allowed=True)
    negotiation.start()
    negotiation.receive(sasl("success"))
    with pytest.raises(StreamProtocolError, match="after the login ended"):
        negotiation.receive(sasl("success"))


def test_non_sasl_element_is_a_protocol_error() -> None:
    negotiation = SaslNegotiation("alice", PASSWORD, ["PLAIN"], plain_allowed=True)
    negotiation.start()
    with pytest.raises(StreamProtocolError, match="non-SASL"):
        negotiation.receive(etree.Element("{jabber:client}message"))


def test_unknown_sasl_element_is_a_protocol_error() -> None:
    negotiation = SaslNegotiation("alice", PASSWORD, ["PLAIN"], plain_allowed=True)
    negotiation.start()
    with pytest.raises(StreamProtocolError, match="<abort>"):
        negotiation.receive(sasl("abort"))


def test_receive_before_start_is_a_local_error() -> None:
    negotiation = SaslNegotiation("alice", PASSWORD, ["PLAIN"], plain_allowed=True)
    with pytest.raises(ValueError, match="start"):
        negotiation.receive(sasl("success"))


def test_start_twice_is_a_local_error() -> None:
    negotiation = SaslNegotiation("alice", PASSWORD, ["PLAIN"], plain_allowed=True)
    negotiation.start()
    with pytest.raises(ValueError, match="already started"):
        negotiation.start()
