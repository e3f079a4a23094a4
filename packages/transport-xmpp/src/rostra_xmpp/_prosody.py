"""A local Prosody for development and tests: its config, command line and readiness on ``LocalXmppServer``.

Rules of this module:
- Everything the server needs (config, CA, certificate, data, logs) lives in one directory; nothing of the
  machine's own Prosody set-up (/etc/prosody) is read or changed.
- Every listener is bound to 127.0.0.1; ports given as 0 are picked once and kept, so ``kill()`` then ``start()``
  brings the same server back on the same ports with the same data.
- The lifecycle (start, stop, kill, close, the ready wait) is ``LocalXmppServer``'s; every wait has a timeout.
"""

from __future__ import annotations

import os
import re
import subprocess
from importlib import resources
from pathlib import Path
from string import Template
from typing import IO

from rostra_xmpp._local_server import LOOPBACK, LocalXmppServer

__all__ = ["INSTALL_HINT", "ProsodyError", "ProsodyNotInstalledError", "ProsodyServer"]

INSTALL_HINT = "Prosody is not installed: run `apt-get install -y prosody` (Debian/Ubuntu), or scripts/ensure-prosody"
_UPLOAD_SIZE_LIMIT = 10 * 1024 * 1024
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


class ProsodyServer(LocalXmppServer):
    """One Prosody process with a generated config, bound to 127.0.0.1.

    ``directory`` holds everything (a temporary directory, removed on ``__exit__``, when None). Ports given as 0
    are picked on the first ``start()`` and kept for later starts.
    """

    _NAME = "Prosody"
    _ERROR = ProsodyError
    _NOT_INSTALLED = ProsodyNotInstalledError
    _WS_PATH = "/xmpp-websocket"
    _LOG_FILE = "prosody.log"
    _OUTPUT_FILE = "prosody.out"

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
        super().__init__(
            directory,
            c2s_port,
            http_port,
            domain,
            upload,
            xmpps_port=xmpps_port,
            https_port=https_port,
            executable=executable,
            ready_timeout=ready_timeout,
            stop_timeout=stop_timeout,
        )

    # -- hooks ---------------------------------------------------------------------------------------------------

    def _write_config(self, cert_dir: Path) -> None:
        (self.directory / "data").mkdir(exist_ok=True)
        (self.directory / "prosody.cfg.lua").write_text(self._render_config(cert_dir))

    def _spawn(self, binary: str, output: IO[bytes]) -> subprocess.Popen[bytes]:
        config = self.directory / "prosody.cfg.lua"
        return subprocess.Popen(
            [binary, "--config", str(config), "-F"], stdin=subprocess.DEVNULL, stdout=output, stderr=output
        )

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
            http_external_url=_lua(f"http://{LOOPBACK}:{self._http_port}/"),
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

    def _start_failure(self, log: str) -> str | None:
        """Why this start failed, from Prosody's log (a port it could not open), or None."""
        failed = _PORT_FAILED.search(log)
        if failed is not None:
            return f"Prosody could not open port {failed.group(1)} on {LOOPBACK} ({failed.group(0)})"
        no_ports = _NO_PORTS.search(log)
        if no_ports is not None:
            service = no_ports.group(1)
            return f"Prosody opened no port for {service} (port {self._ports()[service]} on {LOOPBACK})"
        return None

    def _all_listening(self, log: str) -> bool:
        """True once Prosody logged every service as listening on its own port."""
        return all(
            f"Activated service '{service}' on [{LOOPBACK}]:{port}" in log for service, port in self._ports().items()
        )
