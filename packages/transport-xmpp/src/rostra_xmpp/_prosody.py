"""A local Prosody for development and tests: generated config, CA and certificate, subprocess lifecycle.

Rules of this module:
- Everything the server needs (config, CA, certificate, data, logs) lives in one directory; nothing of the
  machine's own Prosody set-up (/etc/prosody) is read or changed.
- Every listener is bound to 127.0.0.1; ports given as 0 are picked once and kept, so ``kill()`` then ``start()``
  brings the same server back on the same ports with the same data.
- The API is synchronous (it is used from pytest fixtures and a CLI command); every wait has a timeout.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from importlib import resources
from pathlib import Path
from string import Template
from types import TracebackType

from rostra_xmpp._local_server import LOOPBACK as _LOOPBACK
from rostra_xmpp._local_server import free_port as _free_port
from rostra_xmpp._local_server import port_in_use as _port_in_use
from rostra_xmpp._local_server import stream_features_received as _stream_features_received
from rostra_xmpp._local_server import write_certificates as _write_certificates

__all__ = ["INSTALL_HINT", "ProsodyError", "ProsodyNotInstalledError", "ProsodyServer"]

INSTALL_HINT = "Prosody is not installed: run `apt-get install -y prosody` (Debian/Ubuntu), or scripts/ensure-prosody"
_UPLOAD_SIZE_LIMIT = 10 * 1024 * 1024
_LOG_TAIL_LINES = 30
# What Prosody logs when a listener could not be opened (it then runs on, without that service).
_PORT_FAILED = re.compile(r"Failed to open server port (\d+)[^\n]*")
_NO_PORTS = re.compile(r"Activated service '(c2s|c2s_direct_tls|https?)' on no ports")


class ProsodyError(RuntimeError):
    """Prosody could not be started or did not become ready; the message carries the tail of its log."""


class ProsodyNotInstalledError(ProsodyError):
    """The ``prosody`` executable is not on PATH."""

    def __init__(self) -> None:
        super().__init__(INSTALL_HINT)


def _lua(value: str) -> str:
    """Quote ``value`` as a Lua string literal."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


class ProsodyServer:
    """One Prosody process with a generated config, bound to 127.0.0.1.

    ``directory`` holds everything (a temporary directory, removed on ``__exit__``, when None). Ports given as 0
    are picked on the first ``start()`` and kept for later starts.
    """

    def __init__(
        self,
        directory: Path | None = None,
        c2s_port: int = 0,
        http_port: int = 0,
        domain: str = "localhost",
        upload: bool = True,
        *,
        xmpps_port: int = 0,
        https_port: int = 0,
        executable: str = "prosody",
        ready_timeout: float = 15.0,
        stop_timeout: float = 10.0,
    ) -> None:
        # Absolute, because Prosody resolves relative paths in its config against its own idea of a base dir.
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
            raise RuntimeError("the Prosody directory is created by start()")
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
        return f"xmpp://{_LOOPBACK}:{self._c2s_port}"

    @property
    def xmpps_url(self) -> str:
        return f"xmpps://{_LOOPBACK}:{self._xmpps_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{_LOOPBACK}:{self._http_port}/xmpp-websocket"

    @property
    def wss_url(self) -> str:
        """The WebSocket endpoint over TLS (the certificate is for the domain, signed by ``ca_file``)."""
        return f"wss://{_LOOPBACK}:{self._https_port}/xmpp-websocket"

    @property
    def ca_file(self) -> Path:
        """The PEM file of the CA that signed the server's certificate."""
        return self.directory / "certs" / "ca.crt"

    @property
    def log_file(self) -> Path:
        """Prosody's own log (info level)."""
        return self.directory / "prosody.log"

    @property
    def pid(self) -> int | None:
        """The running Prosody's process id, or None."""
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
        """Start Prosody and return once it serves stream features; a no-op when it is running.

        Raises ProsodyNotInstalledError without a ``prosody`` executable, ProsodyError when one of its ports is in
        use (before starting it), and ProsodyError (with the tail of its log) when it exits, fails to open one of
        its ports, or is not ready within the ready timeout.
        """
        if self.running:
            return
        binary = shutil.which(self._executable)
        if binary is None:
            raise ProsodyNotInstalledError
        config = self._prepare()
        self._refuse_ports_in_use()
        self._log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        output = (self.directory / "prosody.out").open("ab")
        try:
            self._process = subprocess.Popen(
                [binary, "--config", str(config), "-F"], stdin=subprocess.DEVNULL, stdout=output, stderr=output
            )
        finally:
            output.close()
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise

    def stop(self) -> None:
        """Stop Prosody with SIGTERM (SIGKILL after the stop timeout) and reap it; a no-op when it is not running."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(self._stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._process = None

    def kill(self) -> None:
        """Kill Prosody with SIGKILL (a crash, for restart tests) and reap it; a no-op when it is not running."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait()
        self._process = None

    def close(self) -> None:
        """Stop Prosody and remove the directory if it is a temporary one of our own."""
        self.stop()
        if self._owns_directory and self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None

    def __enter__(self) -> ProsodyServer:
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
        return f"<ProsodyServer {self._domain} {ports} {state}>"

    # -- internals -----------------------------------------------------------------------------------------------

    def _prepare(self) -> Path:
        """Create the directory, ports, certificates (once) and the config file; return the config's path."""
        if self._directory is None:
            self._directory = Path(tempfile.mkdtemp(prefix="rostra-prosody-"))
        directory = self._directory
        (directory / "data").mkdir(parents=True, exist_ok=True)
        cert_dir = directory / "certs"
        cert_dir.mkdir(exist_ok=True)
        if not all((cert_dir / name).exists() for name in ("ca.crt", "server.crt", "server.key")):
            _write_certificates(cert_dir, self._domain)
        if self._c2s_port == 0:
            self._c2s_port = _free_port()
        while self._http_port in (0, self._c2s_port):
            self._http_port = _free_port()
        while self._xmpps_port in (0, self._c2s_port, self._http_port):
            self._xmpps_port = _free_port()
        while self._https_port in (0, self._c2s_port, self._http_port, self._xmpps_port):
            self._https_port = _free_port()
        config = directory / "prosody.cfg.lua"
        config.write_text(self._render_config(cert_dir))
        return config

    def _render_config(self, cert_dir: Path) -> str:
        template = resources.files("rostra_xmpp").joinpath("prosody.cfg.lua.in").read_text(encoding="utf-8")
        directory = self.directory
        return Template(template).substitute(
            run_as_root="true" if os.geteuid() == 0 else "false",
            pidfile=_lua(str(directory / "prosody.pid")),
            data_path=_lua(str(directory / "data")),
            log_file=_lua(str(self.log_file)),
            c2s_port=self._c2s_port,
            http_port=self._http_port,
            xmpps_port=self._xmpps_port,
            https_port=self._https_port,
            domain=_lua(self._domain),
            cert_dir=_lua(str(cert_dir)),
            cert_file=_lua(str(cert_dir / "server.crt")),
            key_file=_lua(str(cert_dir / "server.key")),
            upload="true" if self._upload else "false",
            upload_domain=_lua(f"upload.{self._domain}"),
            http_external_url=_lua(f"http://{_LOOPBACK}:{self._http_port}/"),
            upload_size_limit=_UPLOAD_SIZE_LIMIT,
        )

    def _ports(self) -> dict[str, int]:
        """Prosody's listening services and their ports."""
        return {
            "c2s": self._c2s_port,
            "c2s_direct_tls": self._xmpps_port,
            "http": self._http_port,
            "https": self._https_port,
        }

    def _refuse_ports_in_use(self) -> None:
        """Raise ProsodyError naming the first port another program listens on (Prosody would start without it)."""
        for service, port in self._ports().items():
            if _port_in_use(port):
                raise ProsodyError(
                    f"Cannot start Prosody: port {port} on {_LOOPBACK} ({service}) is in use by another program: "
                    "pick another port, or 0 for a free one"
                )

    def _start_failure(self, log: str) -> str | None:
        """Why this start failed, from Prosody's log (a port it could not open), or None."""
        failed = _PORT_FAILED.search(log)
        if failed is not None:
            return f"Prosody could not open port {failed.group(1)} on {_LOOPBACK} ({failed.group(0)})"
        no_ports = _NO_PORTS.search(log)
        if no_ports is not None:
            service = no_ports.group(1)
            return f"Prosody opened no port for {service} (port {self._ports()[service]} on {_LOOPBACK})"
        return None

    def _all_listening(self, log: str) -> bool:
        """True once Prosody logged every service as listening on its own port."""
        return all(
            f"Activated service '{service}' on [{_LOOPBACK}]:{port}" in log for service, port in self._ports().items()
        )

    def _wait_ready(self) -> None:
        """Return once this Prosody logged all its ports open and serves stream features; else raise ProsodyError.

        The probe alone is not enough: another server on the c2s port would answer it.
        """
        assert self._process is not None
        deadline = time.monotonic() + self._ready_timeout
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                raise ProsodyError(f"Prosody exited with status {code} while starting.\n{self._log_tail()}")
            log = self._new_log_text()
            failure = self._start_failure(log)
            if failure is not None:
                raise ProsodyError(f"{failure}.\n{self._log_tail()}")
            remaining = max(0.1, deadline - time.monotonic())
            listening = self._all_listening(log)
            if listening and _stream_features_received(self._c2s_port, self._domain, min(2.0, remaining)):
                return
            time.sleep(0.05)
        raise ProsodyError(
            f"Prosody was not ready on {_LOOPBACK}:{self._c2s_port} within {self._ready_timeout:g} s.\n"
            f"{self._log_tail()}"
        )

    def _new_log_text(self) -> str:
        """What Prosody has logged since this start."""
        try:
            with self.log_file.open("rb") as log:
                log.seek(self._log_offset)
                return log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def _log_tail(self) -> str:
        """The last lines of Prosody's log and of its stdout/stderr, for error messages."""
        parts = []
        for path in (self.log_file, self.directory / "prosody.out"):
            try:
                lines = path.read_text(errors="replace").splitlines()[-_LOG_TAIL_LINES:]
            except FileNotFoundError:
                continue
            parts.append(f"--- {path.name} (last lines) ---\n" + "\n".join(lines))
        return "\n".join(parts) or "(Prosody wrote no log)"
