"""The Prosody launcher and ``rostra dev-server``: what a client can rely on from the server they start."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from _proc import listening_addresses
from rostra_xmpp._prosody import INSTALL_HINT, ProsodyError, ProsodyNotInstalledError, ProsodyServer

STREAM_HEADER = (
    "<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
)


def _read_until(sock: socket.socket, marker: bytes) -> bytes:
    received = b""
    while marker not in received:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"closed before {marker!r}; got {received!r}")
        received += chunk
    return received


def _starttls(port: int, ca_file: Path, server_hostname: str) -> ssl.SSLSocket:
    """Open a c2s stream, negotiate STARTTLS and return the TLS socket verified against ``ca_file``."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        sock.sendall(STREAM_HEADER.encode())
        _read_until(sock, b"</stream:features>")
        sock.sendall(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        _read_until(sock, b"<proceed")
        context = ssl.create_default_context(cafile=str(ca_file))
        return context.wrap_socket(sock, server_hostname=server_hostname)
    except BaseException:
        sock.close()
        raise


def _serves_stream_features(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(STREAM_HEADER.encode())
            return b"</stream:features>" in _read_until(sock, b"</stream:features>")
    except OSError:
        return False


@pytest.fixture
def own_prosody(tmp_path: Path) -> Iterator[ProsodyServer]:
    """A Prosody of this test's own (for tests that stop or kill it), closed after the test."""
    server = ProsodyServer(directory=tmp_path / "prosody", upload=False)
    try:
        server.start()
    except ProsodyNotInstalledError as error:
        pytest.fail(str(error), pytrace=False)
    yield server
    server.close()


def test_starttls_certificate_verifies_against_generated_ca_for_localhost(prosody: ProsodyServer) -> None:
    with _starttls(prosody.c2s_port, prosody.ca_file, "localhost") as tls:
        certificate = tls.getpeercert()
    assert certificate is not None
    assert certificate["subject"] == ((("commonName", "localhost"),),)


def test_direct_tls_port_serves_the_certificate_verified_for_localhost(prosody: ProsodyServer) -> None:
    context = ssl.create_default_context(cafile=str(prosody.ca_file))
    with (
        socket.create_connection(("127.0.0.1", prosody.xmpps_port), timeout=10) as sock,
        context.wrap_socket(sock, server_hostname="localhost") as tls,
    ):
        tls.sendall(STREAM_HEADER.encode())
        features = _read_until(tls, b"</stream:features>")
    assert (prosody.xmpps_url, b"<mechanism>SCRAM-SHA-1</mechanism>" in features) == (
        f"xmpps://127.0.0.1:{prosody.xmpps_port}",
        True,
    )


def test_starttls_certificate_is_refused_for_another_name(prosody: ProsodyServer) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        _starttls(prosody.c2s_port, prosody.ca_file, "example.com").close()


def test_server_listens_only_on_loopback_ports_it_reports(prosody: ProsodyServer) -> None:
    assert prosody.pid is not None
    assert listening_addresses(prosody.pid) == {
        ("127.0.0.1", prosody.c2s_port),
        ("127.0.0.1", prosody.xmpps_port),
        ("127.0.0.1", prosody.http_port),
        ("127.0.0.1", prosody.https_port),
    }


def test_info_gives_urls_ca_file_and_domain(prosody: ProsodyServer) -> None:
    assert prosody.info() == {
        "xmpp": f"xmpp://127.0.0.1:{prosody.c2s_port}",
        "ws": f"ws://127.0.0.1:{prosody.http_port}/xmpp-websocket",
        "caFile": str(prosody.directory / "certs" / "ca.crt"),
        "domain": "localhost",
    }


def test_websocket_endpoint_accepts_the_xmpp_subprotocol(prosody: ProsodyServer) -> None:
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /xmpp-websocket HTTP/1.1\r\nHost: 127.0.0.1:{prosody.http_port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: xmpp\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", prosody.http_port), timeout=10) as sock:
        sock.sendall(request.encode())
        head = _read_until(sock, b"\r\n\r\n").split(b"\r\n\r\n")[0].decode()
    lines = head.split("\r\n")
    headers = {name.lower(): value for name, _, value in (line.partition(": ") for line in lines[1:])}
    assert (lines[0], headers["sec-websocket-protocol"]) == ("HTTP/1.1 101 Switching Protocols", "xmpp")


def test_stop_leaves_no_process_and_closes_the_port(own_prosody: ProsodyServer) -> None:
    pid = own_prosody.pid
    own_prosody.stop()
    assert (own_prosody.running, Path(f"/proc/{pid}").exists(), _serves_stream_features(own_prosody.c2s_port)) == (
        False,
        False,
        False,
    )


def test_kill_then_start_serves_again_on_the_same_ports(own_prosody: ProsodyServer) -> None:
    ports = (own_prosody.c2s_port, own_prosody.http_port)
    own_prosody.kill()
    own_prosody.start()
    assert ((own_prosody.c2s_port, own_prosody.http_port), _serves_stream_features(own_prosody.c2s_port)) == (
        ports,
        True,
    )


def test_restart_keeps_the_ca_and_the_accounts(own_prosody: ProsodyServer) -> None:
    config = own_prosody.directory / "prosody.cfg.lua"
    subprocess.run(
        ["prosodyctl", "--config", str(config), "register", "alice", "localhost", "a-long-secret"],
        check=True,
        capture_output=True,
    )
    ca_before = own_prosody.ca_file.read_bytes()
    own_prosody.kill()
    own_prosody.start()
    account = own_prosody.directory / "data" / "localhost" / "accounts" / "alice.dat"
    assert (own_prosody.ca_file.read_bytes() == ca_before, account.exists()) == (True, True)


def test_missing_prosody_raises_with_the_install_command(tmp_path: Path) -> None:
    server = ProsodyServer(directory=tmp_path, executable="rostra-test-no-such-prosody")
    with pytest.raises(ProsodyNotInstalledError) as caught:
        server.start()
    assert str(caught.value) == (
        "Prosody is not installed: run `apt-get install -y prosody` (Debian/Ubuntu), or scripts/ensure-prosody"
    )


def test_dev_server_prints_one_json_line_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "rostra_xmpp.devserver", "--dir", str(tmp_path)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        try:
            info = json.loads(process.stdout.readline())
            c2s_port = int(info["xmpp"].rsplit(":", 1)[1])
            serving = _serves_stream_features(c2s_port)
            process.send_signal(signal.SIGTERM)
            rest, _ = process.communicate(timeout=30)
        finally:
            process.kill()
    assert (sorted(info), info["domain"], info["caFile"], serving, rest, process.returncode) == (
        ["caFile", "domain", "ws", "xmpp"],
        "localhost",
        str(tmp_path / "certs" / "ca.crt"),
        True,
        "",
        0,
    )


def test_dev_server_stops_prosody_on_sigterm(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "rostra_xmpp.devserver", "--dir", str(tmp_path)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as process:
        assert process.stdout is not None
        try:
            info = json.loads(process.stdout.readline())
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=30)
        finally:
            process.kill()
    assert _serves_stream_features(int(info["xmpp"].rsplit(":", 1)[1])) is False


def test_dev_server_without_prosody_prints_install_command_and_exits_2(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "rostra_xmpp.devserver", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert (result.returncode, result.stdout, result.stderr) == (2, "", INSTALL_HINT + "\n")


def test_relative_directory_is_kept_as_an_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert ProsodyServer(directory=Path("server")).directory == tmp_path / "server"


def test_failed_start_in_with_leaves_no_temporary_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    with pytest.raises(ProsodyError, match="exited with status"), ProsodyServer(executable="false"):
        pass
    assert list(tmp_path.iterdir()) == []


def test_start_refuses_a_c2s_port_in_use_before_starting_prosody(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        server = ProsodyServer(directory=tmp_path, c2s_port=port, upload=False)
        with pytest.raises(ProsodyError) as caught:
            server.start()
    assert (str(caught.value), server.running, (tmp_path / "prosody.log").exists()) == (
        f"Cannot start Prosody: port {port} on 127.0.0.1 (c2s) is in use by another program: "
        "pick another port, or 0 for a free one",
        False,
        False,
    )


def test_a_port_prosody_fails_to_open_is_a_start_failure_though_another_server_answers_there(
    prosody: ProsodyServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("rostra_xmpp._local_server.port_in_use", lambda port: False)  # only Prosody's own log tells
    server = ProsodyServer(directory=tmp_path, c2s_port=prosody.c2s_port, upload=False)
    with pytest.raises(ProsodyError) as caught:
        server.start()
    assert (str(caught.value).splitlines()[0], server.running) == (
        f"Prosody could not open port {prosody.c2s_port} on 127.0.0.1 (Failed to open server port "
        f"{prosody.c2s_port} on 127.0.0.1, this port is in use by another application).",
        False,
    )


def test_dev_server_on_a_c2s_port_in_use_exits_1_naming_the_port(prosody: ProsodyServer, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rostra_xmpp.devserver", "--dir", str(tmp_path), "--c2s-port", str(prosody.c2s_port)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout, result.stderr) == (
        1,
        "",
        f"Cannot start Prosody: port {prosody.c2s_port} on 127.0.0.1 (c2s) is in use by another program: "
        "pick another port, or 0 for a free one\n",
    )
