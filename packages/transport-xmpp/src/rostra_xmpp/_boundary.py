"""Where aioxmpp meets Rostra: the pinned connection, TLS verification, and the ONE exception translation.

Rules:
- A connection goes to exactly the host and port of the URL. aioxmpp falls back to DNS and ``<domain>:5222`` when
  an ``override_peer`` fails; ``PinnedConnector`` turns that failure into ``PinnedConnectError`` (not an OSError),
  which aioxmpp does not catch, so no fallback happens.
- TLS is always on and verified for the XMPP domain against ``ca_file`` (or the system store); only an explicit
  ``verify_tls=False`` turns verification off.
- ``translate`` maps every aioxmpp, aiosasl, OpenSSL and OS exception to a RostraError, once. Nothing else leaks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Iterator
from types import TracebackType
from typing import Any, NoReturn

import aiosasl
import aioxmpp
import aioxmpp.connector
import aioxmpp.errors
import aioxmpp.protocol
import aioxmpp.security_layer as sl
import OpenSSL.SSL
from cryptography import x509 as cx509

from rostra._errors import (
    AuthenticationError,
    InvalidInputError,
    RequestTimeoutError,
    RostraError,
    ServerError,
    UnreachableError,
)
from rostra_xmpp_common import mapping

__all__ = ["PinnedConnectError", "PinnedConnector", "TlsPolicy", "raise_translated", "translate"]

_log = logging.getLogger("rostra_xmpp")
# aioxmpp logs every failed login and closed stream with a traceback at ERROR. A library must not print that by
# default (Python's last-resort handler would): applications that configure logging still receive the records.
for _name in ("rostra_xmpp", "aioxmpp"):
    logging.getLogger(_name).addHandler(logging.NullHandler())

# aioxmpp mutes what it sends during SASL, but its DEBUG wire log shows what it RECEIVES: the server's SCRAM
# challenge (nonce, salt, iteration count) and success (server signature). Those payloads are cut from the record.
_SASL_PAYLOAD = re.compile(rb"(<(?:[\w-]+:)?(?:auth|response|challenge|success)\b[^>]*>)[^<]+")


class _MuteSaslPayloads(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(arg, bytes) for arg in record.args):
            record.args = tuple(
                _SASL_PAYLOAD.sub(rb"\1<!-- SASL payload omitted -->", arg) if isinstance(arg, bytes) else arg
                for arg in record.args
            )
        return True


logging.getLogger("rostra_xmpp.aioxmpp.XMLStream").addFilter(_MuteSaslPayloads())


class PinnedConnectError(Exception):
    """The pinned host:port could not be reached (wraps the cause); deliberately not an OSError."""

    def __init__(self, host: str, port: int, cause: BaseException, certificate_failed: bool) -> None:
        super().__init__(f"{host}:{port}: {type(cause).__name__}")
        self.host = host
        self.port = port
        self.cause = cause
        self.certificate_failed = certificate_failed


def _hostname_matches(cert: Any, domain: str) -> bool:
    """RFC 6125 DNS-ID check of an OpenSSL X509 against ``domain`` (exact, or a left-most ``*`` label)."""
    wanted = domain.lower().rstrip(".")
    try:
        san = cert.to_cryptography().extensions.get_extension_for_class(cx509.SubjectAlternativeName).value
    except (cx509.ExtensionNotFound, ValueError):
        return False
    for name in san.get_values_for_type(cx509.DNSName):
        name = name.lower().rstrip(".")
        if name == wanted:
            return True
        if name.startswith("*.") and "." in name[2:] and wanted.partition(".")[2] == name[2:]:
            return True
    return False


class _Verifier(sl.CertificateVerifier):  # type: ignore[misc]
    """OpenSSL's PKIX chain check against ``ca_file`` (or the system store), plus the domain name check."""

    def __init__(self, policy: TlsPolicy) -> None:
        self._policy = policy

    def setup_context(self, ctx: OpenSSL.SSL.Context, transport: Any) -> None:
        self.transport = transport
        self._policy.stream = getattr(transport, "_protocol", None)
        _quiet_handshake_failure(transport)
        if not self._policy.verify:
            ctx.set_verify(OpenSSL.SSL.VERIFY_NONE, lambda *args: True)
            return
        ctx.set_verify(OpenSSL.SSL.VERIFY_PEER, self.verify_callback)
        if self._policy.ca_file:
            try:
                ctx.load_verify_locations(self._policy.ca_file)
            except OpenSSL.SSL.Error:
                self._policy.ca_file_failed = True
                raise
        else:
            ctx.set_default_verify_paths()

    def verify_callback(self, conn: Any, cert: Any, errno: int, depth: int, ok: int) -> bool:
        if not ok or (depth == 0 and not _hostname_matches(cert, self._policy.domain)):
            self._policy.certificate_failed = True
            return False
        return True

    async def post_handshake(self, transport: Any) -> None:
        return None


def _quiet_handshake_failure(transport: Any) -> None:
    """Make a failed TLS handshake a plain exception of the connect call, and nothing else.

    aioopenssl 0.6 reports it to the event loop's exception handler ("Fatal error on tls handshake") and then
    sets its waiter twice (an InvalidStateError in a loop callback). The failure is already raised to the caller
    (and translated), so this instance closes without either report.
    """
    if not hasattr(transport, "_force_close") or not hasattr(transport, "_waiter"):
        return  # another aioopenssl: leave it alone

    def fatal_error(exc: BaseException, msg: str) -> None:
        waiter = transport._waiter
        transport._force_close(exc)  # also fails the waiter the connect call awaits
        transport._waiter = None
        if waiter is not None:  # its awaiter may be gone already: never report it as "never retrieved"
            waiter.add_done_callback(_retrieve)

    transport._fatal_error = fatal_error


def _ssl_context() -> OpenSSL.SSL.Context:
    ctx = OpenSSL.SSL.Context(OpenSSL.SSL.TLS_CLIENT_METHOD)
    ctx.set_min_proto_version(OpenSSL.SSL.TLS1_2_VERSION)
    return ctx


class TlsPolicy:
    """How one connection does TLS; remembers whether the certificate failed verification."""

    def __init__(self, domain: str, ca_file: str | None, verify: bool) -> None:
        self.domain = domain
        self.ca_file = ca_file
        self.verify = verify
        self.certificate_failed = False
        self.ca_file_failed = False  # ca_file could not be loaded (missing, unreadable, not PEM)
        self.stream: Any = None  # the XML stream of the TLS handshake, once it started

    def security_layer(self, password: str | None) -> sl.SecurityLayer:
        """TLS required; SASL by password (SCRAM before PLAIN, PLAIN only over TLS), or none for registration."""
        providers = []
        if password is not None:

            async def provide(jid: Any, attempt: int) -> str:
                return password

            # One attempt: retrying a wrong password helps nobody (and may trip the server's throttle).
            providers.append(sl.PasswordSASLProvider(provide, max_auth_attempts=1))
        return sl.SecurityLayer(_ssl_context, lambda: _Verifier(self), True, providers)


def _retrieve_stream_errors(stream: Any) -> None:
    """Mark the failed stream's pending futures as retrieved, so asyncio does not print them when collected.

    aioxmpp fails them with the TLS error (or "stream shut down") once the stream closes; the caller already
    gets that error, translated, from the connect call.
    """
    for future in list(getattr(stream, "_error_futures", ())):
        future.add_done_callback(_retrieve)


def _streams_of(tb: TracebackType | None) -> list[Any]:
    """The XML streams that the frames of a failed connect call had created (aioxmpp keeps them to itself)."""
    found: list[Any] = []
    while tb is not None:
        for value in tb.tb_frame.f_locals.values():
            if isinstance(value, aioxmpp.protocol.XMLStream) and not any(value is seen for seen in found):
                found.append(value)
        tb = tb.tb_next
    return found


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class PinnedConnector(aioxmpp.connector.BaseConnector):  # type: ignore[misc]
    """Wraps aioxmpp's STARTTLS or direct-TLS connector; a failure raises ``PinnedConnectError``."""

    def __init__(self, inner: Any, policy: TlsPolicy) -> None:
        self._inner = inner
        self._policy = policy

    @property
    def tls_supported(self) -> bool:
        return bool(self._inner.tls_supported)

    @property
    def dane_supported(self) -> bool:
        return False

    async def connect(self, loop: Any, metadata: Any, domain: str, host: str, port: int, *args: Any, **kw: Any) -> Any:
        try:
            return await self._inner.connect(loop, metadata, domain, host, port, *args, **kw)
        except Exception as exc:  # any failure here (aioopenssl even leaks InvalidStateError) means "unreachable"
            # A refused TCP connection aborts a stream whose features future nobody awaits any more: aioxmpp fails
            # it with "stream shut down" a moment later, which asyncio would print as never retrieved.
            for stream in [self._policy.stream, *_streams_of(exc.__traceback__)]:
                _retrieve_stream_errors(stream)
            raise PinnedConnectError(host, port, exc, self._policy.certificate_failed) from exc


def _unreachable(exc: PinnedConnectError, policy: TlsPolicy | None) -> RostraError:
    if policy is not None and policy.ca_file_failed:
        return InvalidInputError(
            f"The CA file {policy.ca_file!r} (the ca_file option) cannot be loaded: give a readable PEM file with "
            "the CA certificate that signed the server's certificate"
        )
    if exc.certificate_failed:
        domain = policy.domain if policy is not None else "the domain"
        return UnreachableError(
            f"The server's TLS certificate failed verification for {domain!r}: pass the ca_file option with the CA "
            "that signed it (or fix the server's certificate)"
        )
    if isinstance(exc.cause, aioxmpp.errors.StreamError):
        condition = exc.cause.condition.value[1] if exc.cause.condition is not None else "stream error"
        domain = policy.domain if policy is not None else "the domain"
        return UnreachableError(
            f"The server at {exc.host}:{exc.port} refused the stream for {domain!r} ({condition}): check the "
            "domain (?domain= in the URL, or the domain option)"
        )
    if isinstance(exc.cause, aioxmpp.errors.TLSUnavailable):
        return UnreachableError(f"The server at {exc.host}:{exc.port} does not offer TLS: Rostra always requires it")
    return UnreachableError(
        f"Cannot reach the XMPP server at {exc.host}:{exc.port} ({type(exc.cause).__name__}): check the server "
        "URL and that the server is running"
    )


def raise_translated(exc: BaseException, *, operation: str, policy: TlsPolicy | None = None) -> NoReturn:
    """Raise the RostraError for an exception from aioxmpp (or re-raise a RostraError / cancellation)."""
    if isinstance(exc, RostraError | asyncio.CancelledError):
        raise exc
    if isinstance(exc, PinnedConnectError):
        raise _unreachable(exc, policy) from None
    if isinstance(exc, aiosasl.AuthenticationFailure):
        raise AuthenticationError() from None
    if isinstance(exc, aioxmpp.errors.XMPPError):
        condition = exc.condition.value[1] if exc.condition is not None else "undefined-condition"
        app = exc.application_defined_condition
        if app is not None and getattr(app, "TAG", ("", ""))[1] == "file-too-large":
            condition = "file-too-large"
        raise mapping.error_from_condition(condition, operation=operation, text=exc.text) from None
    if isinstance(exc, aiosasl.SASLError):
        raise AuthenticationError("The server refused the login (SASL failed): check the credentials") from None
    if isinstance(exc, TimeoutError):  # asyncio's TimeoutError is the builtin one since 3.11
        raise RequestTimeoutError(f"{operation.replace('_', ' ')}: no answer from the server in time") from None
    if isinstance(exc, OSError | EOFError | aioxmpp.errors.StreamError | OpenSSL.SSL.Error):
        raise UnreachableError(
            f"{operation.replace('_', ' ')}: the connection to the XMPP server failed ({type(exc).__name__}): "
            "check that the server is running, then connect again"
        ) from None
    _log.debug("untranslated exception in %s", operation, exc_info=exc)
    raise ServerError(f"{operation.replace('_', ' ')} failed unexpectedly ({type(exc).__name__})") from None


@contextlib.contextmanager
def translate(operation: str, policy: TlsPolicy | None = None) -> Iterator[None]:
    """Run a block whose aioxmpp exceptions leave it as RostraErrors (see ``raise_translated``)."""
    try:
        yield
    except Exception as exc:
        raise_translated(exc, operation=operation, policy=policy)
