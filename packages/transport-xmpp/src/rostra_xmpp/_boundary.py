"""Where aioxmpp meets Rostra: the pinned connection, TLS verification, and the ONE exception translation.

Rules:
- A connection goes to exactly the host and port of the URL. aioxmpp falls back to DNS and ``<domain>:5222`` when
  an ``override_peer`` fails; ``PinnedConnector`` turns that failure into ``PinnedConnectError`` (not an OSError),
  which aioxmpp does not catch, so no fallback happens.
- TLS is always on and verified for the XMPP domain against ``ca_file`` (or the system store); only an explicit
  ``verify_tls=False`` turns verification off.
- What the server sends is parsed with a size limit: aioxmpp has none, so ``_StanzaGuard`` wraps the parser feed of
  every XML stream a ``PinnedConnector`` creates (an ``XMLStream.__init__`` hook, active only inside our connect
  calls). One top-level element (a stanza, counted from its ``<`` to its end tag; between stanzas, anything but
  whitespace) over ``max_message_bytes`` of the (decrypted) bytes the parser takes is a stream error
  ``policy-violation`` (``StanzaTooLargeError``), raised before the parser holds more: aioxmpp then sends it to the
  server and ends the stream, as for any XML it refuses (DTDs, entities, comments, bad format).
- Such a refusal during the login does not end aioxmpp's connect loop (it tries again until the caller's timeout),
  so the guard also reports it to its connector (``PinnedConnector.broken``): connect() fails with it at once.
- ``translate`` maps every aioxmpp, aiosasl, OpenSSL and OS exception to a RostraError, once. Nothing else leaks.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import os
import re
import weakref
from collections.abc import Callable, Iterator
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

__all__ = [
    "PinnedConnectError",
    "PinnedConnector",
    "ServerProtocolError",
    "StanzaTooLargeError",
    "TlsPolicy",
    "lost_because",
    "raise_translated",
    "translate",
]

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


class StanzaTooLargeError(aioxmpp.errors.StreamError):  # type: ignore[misc]
    """The server sent a top-level element over the size limit: sent to it as the stream error policy-violation."""

    def __init__(self, limit: int) -> None:
        super().__init__(aioxmpp.errors.StreamErrorCondition.POLICY_VIOLATION, f"a stanza over the {limit}-byte limit")
        self.limit = limit


class ServerProtocolError(Exception):
    """The server sent XML that the stream refused while connecting (wraps aioxmpp's StreamError)."""

    def __init__(self, cause: aioxmpp.errors.StreamError) -> None:
        super().__init__(str(cause))
        self.cause = cause


# Set by PinnedConnector.connect for the streams it creates (the only streams guarded); None elsewhere.
_ADOPT: contextvars.ContextVar[Callable[[aioxmpp.protocol.XMLStream], None] | None] = contextvars.ContextVar(
    "rostra_xmpp_adopt", default=None
)


def _install_adoption_hook() -> None:
    """Wrap ``XMLStream.__init__`` once, so a stream built inside a PinnedConnector's connect is guarded from its
    first byte (aioxmpp builds the stream inside its connector, and it receives data before the connector returns)."""
    cls = aioxmpp.protocol.XMLStream
    if getattr(cls.__init__, "_rostra_adopts", False):
        return
    original = cls.__init__

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        adopt = _ADOPT.get()
        if adopt is not None:
            adopt(self)

    __init__._rostra_adopts = True  # type: ignore[attr-defined]
    cls.__init__ = __init__


_install_adoption_hook()


class _StanzaGuard:
    """Feeds one aioxmpp XMLStream's parser at most ``limit`` bytes past the start of the current top-level element.

    Positions are expat's byte index into what its parser took (a new parser after STARTTLS and each stream restart
    starts at 0): a stanza starts at its ``<``; between stanzas the count runs from the last end tag (whitespace
    keepalives move it on, being consumed rather than held). A blob is fed in pieces that never pass the limit, so
    the parser never holds more than ``limit`` bytes of one element, and a stanza is never dispatched over it.
    Every StreamError out of the parser (this limit or aioxmpp's own refusals) is reported to ``report`` first.
    """

    def __init__(self, stream: Any, limit: int, report: Callable[[aioxmpp.errors.StreamError], None]) -> None:
        # Only weak references to the stream: a cycle (stream -> guard -> stream) would keep every closed stream,
        # its parser and buffers, until the cyclic GC runs (measured: about 30 KiB per session).
        self._stream = weakref.ref(stream)
        self._limit = limit
        self._report = report
        self._reader: Any = None  # the sax reader the positions belong to (weakly)
        self._fed = 0  # bytes given to that reader
        self._start = 0  # where the current top-level element (or the gap before it) began
        self._feed = type(stream)._rx_feed
        stream._rx_feed = self.feed  # an instance attribute: aioxmpp's data_received calls self._rx_feed(blob)

    def feed(self, blob: bytes) -> None:
        stream = self._stream()
        if stream is None:
            return
        if stream._parser is None:  # the stream is dead: aioxmpp's own feed deals with it
            self._feed(stream, blob)
            return
        if self._reader is None or stream._parser is not self._reader():
            self._follow(stream._parser, stream._processor)
        try:
            while blob:
                room = self._limit - (self._fed - self._start)
                if room <= 0:
                    raise StanzaTooLargeError(self._limit)
                piece, blob = blob[:room], blob[room:]
                self._fed += len(piece)
                self._feed(stream, piece)
        except aioxmpp.errors.StreamError as exc:
            # aioxmpp fails the stream's futures with it; some have no awaiter (reset_stream_and_get_features makes
            # one it never awaits): retrieved here, so asyncio does not report them as never retrieved.
            _retrieve_stream_errors(stream)
            _abandon_element(stream._processor)
            self._report(exc)
            raise

    def _follow(self, reader: Any, processor: Any) -> None:
        """Count from 0 for a new parser; track its top-level elements through its content handler (the sax reader
        binds the handler's ``characters`` at its first feed, which comes after this)."""
        # Weak references here too (the handler's methods live on the handler: strong ones would be cycles).
        self._reader = weakref.ref(reader)
        self._fed = self._start = 0
        guard, handler, sax = weakref.ref(self), weakref.ref(processor), self._reader
        cls = type(processor)

        # The handler and the reader are alive while they call these (the reader holds the handler).
        def position(processor: Any) -> int | None:
            """The byte index of the event under way when it is at the top level (depth 1), else None."""
            reader: Any = sax()
            return int(reader._parser.CurrentByteIndex) if processor._depth == 1 else None

        def start_element(name: Any, qname: Any, attributes: Any) -> None:
            me, processor = guard(), handler()
            at = position(processor)
            if me is not None and at is not None:  # a stanza begins here
                me._start = at
            cls.startElementNS(processor, name, qname, attributes)

        def end_element(name: Any, qname: Any) -> None:
            me, processor = guard(), handler()
            cls.endElementNS(processor, name, qname)
            at = position(processor)
            if me is not None and at is not None:  # a stanza ended: the gap to the next one starts at its end tag
                me._start = at

        def text(chars: str) -> None:
            me, processor = guard(), handler()
            at = position(processor)
            if me is not None and at is not None:  # whitespace between stanzas: consumed, not held
                me._start = max(me._start, at + len(chars.encode()))
            cls.characters(processor, chars)

        processor.startElementNS = start_element
        processor.endElementNS = end_element
        processor.characters = text


class _Abandoned(Exception):
    """Thrown into aioxmpp's parser of an element the stream will never finish."""


def _abandon_element(processor: Any) -> None:
    """End the half-parsed top-level element of a refused stream, so it is never dispatched and its generator
    finishes now. Left alone, it would be closed when the stream is freed, and aioxmpp's ``guard`` (which yields in
    a ``finally``) ignores GeneratorExit: Python prints "Exception ignored in ... generator ignored GeneratorExit".
    Thrown an exception and then the end of each open element, it ends with its own parse error instead."""
    driver = getattr(processor, "_driver", None)
    parser = getattr(driver, "_dest", None)
    if parser is None:
        return
    driver._dest = None  # type: ignore[union-attr]
    try:
        parser.throw(_Abandoned())
        for _ in range(max(int(getattr(processor, "_depth", 1)), 1)):
            parser.send(("end",))
    except Exception:  # noqa: S110 - finished: StopIteration, or the parse error that the thrown one became
        pass


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
    """Ties one connection to its policy; the context (shared, ``_shared_context``) does the checks."""

    def __init__(self, policy: TlsPolicy) -> None:
        self._policy = policy

    def setup_context(self, ctx: OpenSSL.SSL.Context, transport: Any) -> None:
        # The context is shared: nothing of this connection goes into it. aioopenssl makes the transport the
        # connection's app data, which is how _verify finds this policy.
        self.transport = transport
        transport._rostra_tls_policy = self._policy
        self._policy.stream = getattr(transport, "_protocol", None)
        _quiet_handshake_failure(transport)

    def verify_callback(self, conn: Any, cert: Any, errno: int, depth: int, ok: int) -> bool:
        return _verify(conn, cert, errno, depth, ok)  # unused (the context calls _verify); aioxmpp's ABC wants it

    async def post_handshake(self, transport: Any) -> None:
        return None


def _verify(conn: Any, cert: Any, errno: int, depth: int, ok: int) -> bool:
    """OpenSSL's PKIX chain result, plus the domain name check against the connection's policy (none: refused)."""
    policy = getattr(conn.get_app_data(), "_rostra_tls_policy", None)
    if not isinstance(policy, TlsPolicy):
        return False
    if not ok or (depth == 0 and not _hostname_matches(cert, policy.domain)):
        policy.certificate_failed = True
        return False
    return True


def _accept_any(conn: Any, cert: Any, errno: int, depth: int, ok: int) -> bool:
    return True


class _SharedContext(OpenSSL.SSL.Context):
    """A context that many connections use: pyOpenSSL refuses changes once one was made from it, and aioxmpp's
    direct-TLS connector sets ALPN on every connection's context, so setting the same protocols again is a no-op."""

    _alpn: list[bytes] | None = None

    def set_alpn_protos(self, protos: list[bytes]) -> None:
        if self._alpn is not None and list(protos) == self._alpn:
            return
        super().set_alpn_protos(protos)
        self._alpn = list(protos)


@functools.lru_cache(maxsize=8)
def _shared_context(ca_file: str | None, stamp: tuple[int, int, int] | None, verify: bool, alpn: bool) -> Any:
    """One OpenSSL context per (CA file as it is now, verify, direct TLS), shared by every connection: loading the
    system store costs about 0.8 MiB and 8 ms per context, a one-certificate CA file about 33 KiB. A changed CA file
    (``stamp``: inode, size, mtime) is a new key. Raises OpenSSL.SSL.Error when ``ca_file`` cannot be loaded."""
    ctx = _SharedContext(OpenSSL.SSL.TLS_CLIENT_METHOD)
    ctx.set_min_proto_version(OpenSSL.SSL.TLS1_2_VERSION)
    if alpn:
        ctx.set_alpn_protos([b"xmpp-client"])  # XEP-0368; aioxmpp's direct-TLS connector sets the same
    if not verify:
        ctx.set_verify(OpenSSL.SSL.VERIFY_NONE, _accept_any)
        return ctx
    ctx.set_verify(OpenSSL.SSL.VERIFY_PEER, _verify)
    if ca_file:
        ctx.load_verify_locations(ca_file)
    else:
        ctx.set_default_verify_paths()
    return ctx


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


class TlsPolicy:
    """How one connection does TLS; remembers whether the certificate failed verification."""

    def __init__(self, domain: str, ca_file: str | None, verify: bool, *, direct_tls: bool = False) -> None:
        self.domain = domain
        self.ca_file = ca_file
        self.verify = verify
        self.direct_tls = direct_tls
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
        return sl.SecurityLayer(self.ssl_context, lambda: _Verifier(self), True, providers)

    def ssl_context(self) -> OpenSSL.SSL.Context:
        """The shared context for this policy; a CA file that cannot be loaded marks ``ca_file_failed``."""
        try:
            stamp = None
            if self.verify and self.ca_file:
                info = os.stat(self.ca_file)
                stamp = (info.st_ino, info.st_size, info.st_mtime_ns)
            context: OpenSSL.SSL.Context = _shared_context(self.ca_file, stamp, self.verify, self.direct_tls)
        except (OSError, OpenSSL.SSL.Error):
            self.ca_file_failed = True
            raise
        return context


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
    """Wraps aioxmpp's STARTTLS or direct-TLS connector; a failure raises ``PinnedConnectError``.

    The streams it creates are size-guarded (``max_stanza_bytes``); ``broken`` gets the first XML refusal of any of
    them (as its result, never as an exception: nobody need await it).
    """

    def __init__(self, inner: Any, policy: TlsPolicy, max_stanza_bytes: int) -> None:
        self._inner = inner
        self._policy = policy
        self._max_stanza_bytes = max_stanza_bytes
        self.broken: asyncio.Future[aioxmpp.errors.StreamError] = asyncio.get_running_loop().create_future()

    def _adopt(self, stream: aioxmpp.protocol.XMLStream) -> None:
        _StanzaGuard(stream, self._max_stanza_bytes, self._on_refused)

    def _on_refused(self, exc: aioxmpp.errors.StreamError) -> None:
        if not self.broken.done():
            self.broken.set_result(exc)

    @property
    def tls_supported(self) -> bool:
        return bool(self._inner.tls_supported)

    @property
    def dane_supported(self) -> bool:
        return False

    async def connect(self, loop: Any, metadata: Any, domain: str, host: str, port: int, *args: Any, **kw: Any) -> Any:
        adopting = _ADOPT.set(self._adopt)
        try:
            return await self._inner.connect(loop, metadata, domain, host, port, *args, **kw)
        except Exception as exc:  # any failure here (aioopenssl even leaks InvalidStateError) means "unreachable"
            # A refused TCP connection aborts a stream whose features future nobody awaits any more: aioxmpp fails
            # it with "stream shut down" a moment later, which asyncio would print as never retrieved.
            for stream in [self._policy.stream, *_streams_of(exc.__traceback__)]:
                _retrieve_stream_errors(stream)
            raise PinnedConnectError(host, port, exc, self._policy.certificate_failed) from exc
        finally:
            _ADOPT.reset(adopting)


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
    if isinstance(exc, ServerProtocolError):
        raise ServerError(
            f"{operation.replace('_', ' ')}: the XMPP server sent {_refused(exc.cause)}: the connection was closed"
        ) from None
    if isinstance(exc, StanzaTooLargeError):
        raise UnreachableError(
            f"{operation.replace('_', ' ')}: the connection was closed: the XMPP server sent {_refused(exc)}"
        ) from None
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


def _refused(exc: aioxmpp.errors.StreamError) -> str:
    """What the server sent that the stream refused, in a few words (aioxmpp's text, never the server's bytes)."""
    if isinstance(exc, StanzaTooLargeError):
        return f"a stanza over the {exc.limit}-byte limit (the max_message_bytes option)"
    condition = exc.condition.value[1] if exc.condition is not None else "undefined-condition"
    return f"XML that XMPP does not allow ({condition}: {exc.text})" if exc.text else f"XML refused ({condition})"


def lost_because(reason: BaseException | None) -> RostraError | None:
    """The error a session lost to a stream refusal of ours carries: the over-the-limit stanza (500, as ws://)."""
    if isinstance(reason, StanzaTooLargeError):
        return ServerError(f"The XMPP server sent {_refused(reason)}: the session was closed")
    return None


@contextlib.contextmanager
def translate(operation: str, policy: TlsPolicy | None = None) -> Iterator[None]:
    """Run a block whose aioxmpp exceptions leave it as RostraErrors (see ``raise_translated``)."""
    try:
        yield
    except Exception as exc:
        raise_translated(exc, operation=operation, policy=policy)
