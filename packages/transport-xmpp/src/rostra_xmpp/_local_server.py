"""What the local XMPP server launchers (Prosody, ejabberd) share: free loopback ports, a generated CA and
server certificate, the stream-features readiness probe, and ``LocalXmppServer``, the lifecycle of one server
process that ``ProsodyServer`` and ``EjabberdServer`` fill in.

Rules of this module:
- Everything is bound to or aimed at 127.0.0.1.
- A server's files (config, CA, certificate, data, logs) live in its one directory; ports given as 0 are picked
  on the first ``start()`` and kept, so ``kill()`` then ``start()`` brings the same server back on the same ports.
- The API is synchronous (it is used from pytest fixtures and a CLI command); every wait has a timeout.
- What differs between servers is a hook of ``LocalXmppServer`` (config, command line, readiness, signals);
  everything else is written here once.
"""

from __future__ import annotations

import abc
import contextlib
import datetime
import ipaddress
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, ClassVar, Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from rostra_xmpp_common.namespaces import NS_CLIENT, NS_STREAMS

__all__ = [
    "LOOPBACK",
    "LocalXmppServer",
    "free_port",
    "pick_port",
    "port_in_use",
    "stream_features_received",
    "write_certificates",
]

LOOPBACK = "127.0.0.1"
_LOG_TAIL_LINES = 30
_CERT_FILES = ("ca.crt", "server.crt", "server.key")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def pick_port(port: int, taken: set[int]) -> int:
    """Return ``port``, or a free one when it is 0 or in ``taken``; the result is added to ``taken``."""
    while port == 0 or port in taken:
        port = free_port()
    taken.add(port)
    return port


def port_in_use(port: int) -> bool:
    """True when 127.0.0.1:``port`` cannot be bound (another program listens there); TIME_WAIT does not count."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return True
    return False


def _write_pem(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as file:
        file.write(data)


def write_certificates(cert_dir: Path, domain: str) -> None:
    """Write ``ca.crt`` (a self-signed CA), and ``server.crt``/``server.key`` signed by it, into ``cert_dir``."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Rostra dev CA ({domain})")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    dns_names = dict.fromkeys([domain, f"upload.{domain}", "localhost", "upload.localhost"])
    san: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    san.append(x509.IPAddress(ipaddress.ip_address(LOOPBACK)))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_pem(cert_dir / "ca.crt", ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)
    # The key is readable by its writer only; a launcher that runs the server as another user chowns it.
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_pem(cert_dir / "server.key", key_pem, 0o600)
    _write_pem(cert_dir / "server.crt", cert.public_bytes(serialization.Encoding.PEM), 0o644)


def stream_features_received(port: int, domain: str, timeout: float) -> bool:
    """Open a c2s stream to 127.0.0.1:``port``; True once ``</stream:features>`` arrives, False on any failure."""
    header = (
        f"<?xml version='1.0'?><stream:stream to='{domain}' xmlns='{NS_CLIENT}' "
        f"xmlns:stream='{NS_STREAMS}' version='1.0'>"
    )
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
            sock.sendall(header.encode())
            received = b""
            while b"</stream:features>" not in received:
                chunk = sock.recv(4096)
                if not chunk:
                    return False
                received += chunk
            sock.sendall(b"</stream:stream>")
            return True
    except OSError:
        return False


class LocalXmppServer(abc.ABC):
    """One XMPP server process with a generated config, bound to 127.0.0.1: the part both launchers share.

    ``directory`` holds everything (a temporary directory, removed on ``close()``, when None). A subclass names
    its server and its error types in the class attributes and fills in the abstract hooks.
    """

    #: The server's name in messages ("Prosody", "ejabberd").
    _NAME: ClassVar[str]
    #: What every start failure raises; what ``start()`` raises when the executable is missing.
    _ERROR: ClassVar[type[RuntimeError]]
    _NOT_INSTALLED: ClassVar[type[RuntimeError]]
    #: The WebSocket endpoint's path on the HTTP and HTTPS ports.
    _WS_PATH: ClassVar[str]
    #: The server's own log and the file its stdout/stderr go to, relative to the directory.
    _LOG_FILE: ClassVar[str]
    _OUTPUT_FILE: ClassVar[str]
    #: Further logs whose last lines go into error messages, relative to the directory.
    _MORE_LOGS: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        directory: Path | None,
        c2s_port: int,
        http_port: int,
        domain: str,
        upload: bool,
        *,
        xmpps_port: int,
        https_port: int,
        executable: str,
        ready_timeout: float,
        stop_timeout: float,
    ) -> None:
        # Absolute, because a server resolves relative paths in its config against its own idea of a base dir.
        self._directory = Path(directory).resolve() if directory is not None else None
        self._owns_directory = directory is None
        self._c2s_port = c2s_port
        self._http_port = http_port
        self._xmpps_port = xmpps_port
        self._https_port = https_port
        self._domain = domain
        self._upload = upload
        self._executable = executable
        self._ready_timeout = ready_timeout
        self._stop_timeout = stop_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0  # where this start's part of the (appended) log begins

    # -- what clients need ---------------------------------------------------------------------------------------

    @property
    def directory(self) -> Path:
        """The server's directory; raises RuntimeError before the first ``start()`` when it is a temporary one."""
        if self._directory is None:
            raise RuntimeError(f"the {self._NAME} directory is created by start()")
        return self._directory

    @property
    def domain(self) -> str:
        return self._domain

    @property
    def c2s_port(self) -> int:
        """The client-to-server (STARTTLS) port; 0 until the first ``start()`` when it was to be picked."""
        return self._c2s_port

    @property
    def http_port(self) -> int:
        """The HTTP port (WebSocket endpoint and uploads); 0 until the first ``start()`` when it was to be picked."""
        return self._http_port

    @property
    def xmpps_port(self) -> int:
        """The direct-TLS client port (``xmpps://``); 0 until the first ``start()`` when it was to be picked."""
        return self._xmpps_port

    @property
    def https_port(self) -> int:
        """The HTTPS port (``wss://`` WebSocket endpoint); 0 until the first ``start()`` when it was to be picked."""
        return self._https_port

    @property
    def xmpp_url(self) -> str:
        return f"xmpp://{LOOPBACK}:{self._c2s_port}"

    @property
    def xmpps_url(self) -> str:
        return f"xmpps://{LOOPBACK}:{self._xmpps_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{LOOPBACK}:{self._http_port}{self._WS_PATH}"

    @property
    def wss_url(self) -> str:
        """The WebSocket endpoint over TLS (the certificate is for the domain, signed by ``ca_file``)."""
        return f"wss://{LOOPBACK}:{self._https_port}{self._WS_PATH}"

    @property
    def ca_file(self) -> Path:
        """The PEM file of the CA that signed the server's certificate."""
        return self.directory / "certs" / "ca.crt"

    @property
    def log_file(self) -> Path:
        """The server's own log (info level)."""
        return self.directory / self._LOG_FILE

    @property
    def pid(self) -> int | None:
        """The running server's process id, or None."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def info(self) -> dict[str, str]:
        """What a client needs, as printed by ``rostra dev-server``."""
        return {"xmpp": self.xmpp_url, "ws": self.ws_url, "caFile": str(self.ca_file), "domain": self._domain}

    # -- lifecycle -----------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the server and return once it serves stream features; a no-op when it is running.

        Raises the not-installed error without the executable, the server's error when one of its ports is in use
        (before starting it), and the server's error (with the tail of its log) when it exits, reports a failure
        in its log, or is not ready within the ready timeout.
        """
        if self.running:
            return
        binary = self._find_executable()
        if binary is None:
            raise self._NOT_INSTALLED
        self._prepare()
        self._refuse_ports_in_use()
        self._log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        with (self.directory / self._OUTPUT_FILE).open("ab") as output:
            self._process = self._spawn(binary, output)
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise

    def stop(self) -> None:
        """Stop the server with SIGTERM (SIGKILL after the stop timeout) and reap it; a no-op when not running."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            self._terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(self._stop_timeout)
        self._kill()  # after a timeout, or what the server left behind
        process.wait()
        self._process = None

    def kill(self) -> None:
        """Kill the server with SIGKILL (a crash, for restart tests) and reap it; a no-op when it is not running."""
        process = self._process
        if process is None:
            return
        self._kill()
        process.wait()
        self._process = None

    def close(self) -> None:
        """Stop the server and remove the directory if it is a temporary one of our own."""
        self.stop()
        if self._owns_directory and self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()  # __exit__ will not run: do not leave a temporary directory behind
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        ports = f"c2s={self._c2s_port} xmpps={self._xmpps_port} http={self._http_port} https={self._https_port}"
        return f"<{type(self).__name__} {self._domain} {ports} {state}>"

    # -- hooks ---------------------------------------------------------------------------------------------------

    def _find_executable(self) -> str | None:
        """The path of the server's executable, or None when it is not installed."""
        return shutil.which(self._executable)

    @abc.abstractmethod
    def _write_config(self, cert_dir: Path) -> None:
        """Write the server's config (and any directory it needs) into ``directory``; ports are picked by now."""

    @abc.abstractmethod
    def _spawn(self, binary: str, output: IO[bytes]) -> subprocess.Popen[bytes]:
        """Start the server in the foreground with stdout and stderr to ``output``."""

    @abc.abstractmethod
    def _ports(self) -> dict[str, int]:
        """Every port the server listens on, by the name of its service (as messages show it)."""

    @abc.abstractmethod
    def _all_listening(self, log: str) -> bool:
        """True once ``log`` (what the server logged since this start) shows every listener open on its port."""

    def _start_failure(self, log: str) -> str | None:
        """Why this start failed, from ``log`` (what the server logged since this start), or None."""
        return None

    def _pick_ports(self) -> set[int]:
        """Pick each port that is 0 (or the same as one before it); return the set of the server's ports."""
        taken: set[int] = set()
        self._c2s_port = pick_port(self._c2s_port, taken)
        self._http_port = pick_port(self._http_port, taken)
        self._xmpps_port = pick_port(self._xmpps_port, taken)
        self._https_port = pick_port(self._https_port, taken)
        return taken

    def _terminate(self) -> None:
        """Ask the server to shut down cleanly (SIGTERM)."""
        assert self._process is not None
        self._process.terminate()

    def _kill(self) -> None:
        """SIGKILL what is left of the server; nothing when it has exited."""
        assert self._process is not None
        self._process.kill()

    # -- internals -----------------------------------------------------------------------------------------------

    def _prepare(self) -> None:
        """Create the directory, the certificates (once), the ports (once) and the config."""
        if self._directory is None:
            self._directory = Path(tempfile.mkdtemp(prefix=f"rostra-{self._NAME.lower()}-"))
        cert_dir = self._directory / "certs"
        cert_dir.mkdir(parents=True, exist_ok=True)
        if not all((cert_dir / name).exists() for name in _CERT_FILES):
            write_certificates(cert_dir, self._domain)
        self._pick_ports()
        self._write_config(cert_dir)

    def _refuse_ports_in_use(self) -> None:
        """Raise the server's error naming the first port another program listens on."""
        for service, port in self._ports().items():
            if port_in_use(port):
                raise self._ERROR(
                    f"Cannot start {self._NAME}: port {port} on {LOOPBACK} ({service}) is in use by another program: "
                    "pick another port, or 0 for a free one"
                )

    def _wait_ready(self) -> None:
        """Return once this server logged all its listeners open and serves stream features; else raise its error.

        The probe alone is not enough: another server on the c2s port would answer it.
        """
        assert self._process is not None
        deadline = time.monotonic() + self._ready_timeout
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                raise self._ERROR(f"{self._NAME} exited with status {code} while starting.\n{self._log_tail()}")
            log = self._new_log_text()
            failure = self._start_failure(log)
            if failure is not None:
                raise self._ERROR(f"{failure}.\n{self._log_tail()}")
            remaining = max(0.1, deadline - time.monotonic())
            listening = self._all_listening(log)
            if listening and stream_features_received(self._c2s_port, self._domain, min(2.0, remaining)):
                return
            time.sleep(0.05)
        raise self._ERROR(
            f"{self._NAME} was not ready on {LOOPBACK}:{self._c2s_port} within {self._ready_timeout:g} s.\n"
            f"{self._log_tail()}"
        )

    def _new_log_text(self) -> str:
        """What the server has logged since this start."""
        try:
            with self.log_file.open("rb") as log:
                log.seek(self._log_offset)
                return log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def _log_tail(self) -> str:
        """The last lines of the server's logs and of its stdout/stderr, for error messages."""
        parts = []
        names = (self._LOG_FILE, *self._MORE_LOGS, self._OUTPUT_FILE)
        for path in (self.directory / name for name in names):
            try:
                lines = path.read_text(errors="replace").splitlines()[-_LOG_TAIL_LINES:]
            except FileNotFoundError:
                continue
            parts.append(f"--- {path.name} (last lines) ---\n" + "\n".join(lines))
        return "\n".join(parts) or f"({self._NAME} wrote no log)"
