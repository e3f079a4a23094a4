"""SASL for the WebSocket transport, sans-IO: SCRAM-SHA-256 / SCRAM-SHA-1 through scramp, PLAIN only if allowed.

Rules:
- The choice is SCRAM-SHA-256 > SCRAM-SHA-1 > PLAIN, and PLAIN only when the caller allows it (TLS, or an
  explicit opt-in on loopback). No common mechanism is a ``ServerError`` naming what the server offered.
- SCRAM's server signature is ALWAYS verified: ``<success/>`` before a verified server-final, or a wrong
  signature, is a ``StreamProtocolError``. An iteration count over ``MAX_SCRAM_ITERATIONS`` is refused so a
  hostile server cannot make the key derivation run for minutes.
- ``<failure>`` is an ``AuthenticationError``; no message, repr or log ever holds the password or a SASL payload.
- Anything else from the server (garbage base64, a bad SCRAM message, an element after the end) is a
  ``StreamProtocolError``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import enum
from collections.abc import Iterator, Sequence
from typing import Any, Final

import scramp
from lxml import etree

from rostra._errors import AuthenticationError, InvalidInputError, ServerError
from rostra_xmpp_common.namespaces import NS_SASL

from ._errors import StreamProtocolError

__all__ = ["MAX_SCRAM_ITERATIONS", "SaslNegotiation"]

Element = Any  # lxml.etree._Element (lxml ships no type information)

MAX_SCRAM_ITERATIONS: Final = 1_000_000
_PREFERENCE: Final = ("SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN")
# Conditions that mean "these credentials are not accepted": reported exactly as the xmpp:// transport does.
_CREDENTIAL_CONDITIONS: Final = frozenset({"not-authorized", "credentials-expired", "account-disabled"})


class _Step(enum.Enum):
    NEW = "new"  # start() not called yet
    SENT_FIRST = "sent-first"  # <auth> sent; SCRAM waits for server-first, PLAIN for success
    SENT_FINAL = "sent-final"  # client-final sent; waits for server-final (in success or a challenge)
    VERIFIED = "verified"  # server-final verified in a challenge; waits for an empty success
    DONE = "done"
    FAILED = "failed"


class SaslNegotiation:
    """One SASL exchange: ``start()`` gives the ``<auth>``, ``receive()`` answers each server element."""

    def __init__(self, username: str, password: str, mechanisms: Sequence[str], *, plain_allowed: bool) -> None:
        offered = set(mechanisms)
        usable = [m for m in _PREFERENCE if m in offered and (m != "PLAIN" or plain_allowed)]
        if not usable:
            raise ServerError(
                f"no SASL mechanism both sides support: the server offers {', '.join(mechanisms) or 'none'}; "
                f"Rostra speaks SCRAM-SHA-256, SCRAM-SHA-1{' and PLAIN' if plain_allowed else ''}"
                f"{'' if plain_allowed else ' (PLAIN only over TLS or when allowed on loopback)'}"
            )
        self.mechanism: str = usable[0]
        self._username = username
        self._password = password
        self._step = _Step.NEW
        self._scram: scramp.ScramClient | None = None
        if self.mechanism != "PLAIN":
            try:
                self._scram = scramp.ScramClient([self.mechanism], username, password)
            except scramp.ScramException:
                raise InvalidInputError(
                    "The username or password cannot be used for SCRAM login (SASLprep refused it)"
                ) from None

    @property
    def done(self) -> bool:
        """True once the server accepted the login (and, for SCRAM, proved it knows the password)."""
        return self._step is _Step.DONE

    def __repr__(self) -> str:
        return f"SaslNegotiation(mechanism={self.mechanism!r}, step={self._step.value!r})"

    def start(self) -> Element:
        """The ``<auth>`` element with the initial response. Raises ``ValueError`` if called twice."""
        if self._step is not _Step.NEW:
            raise ValueError("SASL negotiation already started")
        if self._scram is None:
            initial = b"\0" + self._username.encode("utf-8") + b"\0" + self._password.encode("utf-8")
        else:
            initial = self._scram.get_client_first().encode("utf-8")
        self._step = _Step.SENT_FIRST
        auth = _element("auth", _b64(initial))
        auth.set("mechanism", self.mechanism)
        return auth

    def receive(self, element: Element) -> Element | None:
        """Answer one SASL element from the server: the ``<response>`` to send, or None on verified success.

        Raises ``AuthenticationError`` on ``<failure>``, ``StreamProtocolError`` on anything not valid here,
        and ``ValueError`` if ``start()`` was not called.
        """
        if self._step is _Step.NEW:
            raise ValueError("call start() before receive()")
        if self._step in (_Step.DONE, _Step.FAILED):
            raise StreamProtocolError("The server sent a SASL element after the login ended")
        try:
            return self._receive(element)
        except (StreamProtocolError, AuthenticationError):
            self._step = _Step.FAILED
            raise

    def _receive(self, element: Element) -> Element | None:
        name = _sasl_name(element)
        if name == "failure":
            raise _failure(element)
        if name == "challenge":
            return self._challenge(_decode(element))
        if name == "success":
            self._success(_decode(element))
            return None
        raise StreamProtocolError(f"The server sent <{name}> during SASL")

    def _challenge(self, data: bytes) -> Element:
        if self._scram is None:
            raise StreamProtocolError("The server sent a SASL challenge to PLAIN")
        if self._step is _Step.SENT_FIRST:
            server_first = _text(data)
            _check_iterations(server_first)
            with _scram_errors():
                self._scram.set_server_first(server_first)
                final = str(self._scram.get_client_final())
            self._step = _Step.SENT_FINAL
            return _element("response", _b64(final.encode("utf-8")))
        if self._step is _Step.SENT_FINAL:
            self._verify(data)
            self._step = _Step.VERIFIED
            return _element("response", "")
        raise StreamProtocolError("The server sent another SASL challenge after its final message")

    def _success(self, data: bytes) -> None:
        if self._scram is not None:
            if self._step is _Step.SENT_FINAL and data:
                self._verify(data)
            elif self._step is not _Step.VERIFIED or data:
                raise StreamProtocolError("The server claimed SASL success without proving it knows the password")
        elif data:
            raise StreamProtocolError("The server sent data with a PLAIN success")
        self._step = _Step.DONE

    def _verify(self, data: bytes) -> None:
        assert self._scram is not None
        with _scram_errors():
            self._scram.set_server_final(_text(data))


def _element(name: str, text: str) -> Element:
    element = etree.Element(f"{{{NS_SASL}}}{name}", nsmap={None: NS_SASL})
    if text:
        element.text = text
    return element


def _b64(data: bytes) -> str:
    # RFC 6120 6.4.2: an empty initial response is sent as "=".
    return base64.b64encode(data).decode("ascii") or "="


def _sasl_name(element: Element) -> str:
    if not etree.iselement(element) or not isinstance(element.tag, str):
        raise StreamProtocolError("The server sent something that is not an element during SASL")
    qname = etree.QName(element)
    if qname.namespace != NS_SASL:
        raise StreamProtocolError("The server sent a non-SASL element during SASL")
    return str(qname.localname)


def _decode(element: Element) -> bytes:
    raw = "".join(element.itertext()).strip()
    if raw in ("", "="):
        return b""
    try:
        return base64.b64decode(raw.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise StreamProtocolError("The server sent SASL data that is not base64") from None


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise StreamProtocolError("The server sent a SCRAM message that is not UTF-8") from None


def _check_iterations(server_first: str) -> None:
    for part in server_first.split(","):
        if part.startswith("i="):
            digits = part[2:]
            if not digits.isascii() or not digits.isdigit() or len(digits) > 9 or int(digits) > MAX_SCRAM_ITERATIONS:
                raise StreamProtocolError(
                    f"The server asked for a SCRAM iteration count that is not a number up to {MAX_SCRAM_ITERATIONS}"
                )


@contextlib.contextmanager
def _scram_errors() -> Iterator[None]:
    """Turn whatever scramp raises on a hostile message into StreamProtocolError (no payload in the text)."""
    try:
        yield
    except scramp.ScramException:
        raise StreamProtocolError("The server's SCRAM message is invalid or its signature is wrong") from None
    except (ValueError, TypeError, KeyError, IndexError):
        raise StreamProtocolError("The server sent a malformed SCRAM message") from None


def _failure(element: Element) -> AuthenticationError:
    condition = next(
        (
            str(etree.QName(child).localname)
            for child in element
            if isinstance(child.tag, str)
            and etree.QName(child).namespace == NS_SASL
            and etree.QName(child).localname != "text"
        ),
        "not-authorized",
    )
    if condition in _CREDENTIAL_CONDITIONS:
        return AuthenticationError()
    return AuthenticationError(f"The server refused the login (SASL failed: {condition}): check the credentials")
