"""What the local XMPP server launchers (Prosody, ejabberd) share: free loopback ports, a generated CA and
server certificate, and the stream-features readiness probe.

Rules of this module: everything is bound to or aimed at 127.0.0.1; nothing here starts a process.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from rostra_xmpp_common.namespaces import NS_CLIENT, NS_STREAMS

__all__ = ["LOOPBACK", "free_port", "port_in_use", "stream_features_received", "write_certificates"]

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


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
