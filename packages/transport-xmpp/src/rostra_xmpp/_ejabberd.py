"""A local ejabberd for tests: generated config, CA and certificate, subprocess lifecycle (Debian's ejabberd 23.01).

Rules of this module:
- Everything the server needs (config, ejabberdctl config, CA, certificate, Mnesia spool, uploads, logs, the
  Erlang cookie) lives in one directory; nothing of the machine's own ejabberd set-up (/etc/ejabberd, its service,
  /var/lib/ejabberd) is read or changed: ``ejabberdctl`` is pointed at our files with --ctl-config/--config.
- Every listener is bound to 127.0.0.1, the Erlang distribution port too (no epmd); ports given as 0 are picked
  once and kept, so ``kill()`` then ``start()`` brings the same server back on the same ports with the same data.
- As root, the server runs as the ``ejabberd`` user (as Debian's ejabberdctl insists): the directory is handed to it.
- The lifecycle (start, stop, kill, close, the ready wait) is ``LocalXmppServer``'s, as ``ProsodyServer``'s; every
  wait has a timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import time
from importlib import resources
from pathlib import Path
from string import Template
from typing import IO

from rostra_xmpp._local_server import LOOPBACK, LocalXmppServer, pick_port, port_in_use

__all__ = ["DURABLE_AFTER", "INSTALL_HINT", "EjabberdError", "EjabberdNotInstalledError", "EjabberdServer"]

INSTALL_HINT = (
    "ejabberd is not installed: run `apt-get install -y ejabberd` (Debian/Ubuntu), or scripts/ensure-ejabberd"
)
_USER = "ejabberd"  # Debian's ejabberdctl runs the server as this user when started by root
_UPLOAD_SIZE_LIMIT = 10 * 1024 * 1024
_MAX_STANZA_SIZE = 1024 * 1024  # as the suite's Prosody (c2s_stanza_size_limit)
#: Seconds after which a write is on disk and survives ``kill()`` (Mnesia's disk_log flushes every 2 s).
DURABLE_AFTER = 2.5


class EjabberdError(RuntimeError):
    """ejabberd could not be started or did not become ready; the message carries the tail of its log."""


class EjabberdNotInstalledError(EjabberdError):
    """The ``ejabberdctl`` executable is not on PATH (nor in /usr/sbin)."""

    def __init__(self) -> None:
        super().__init__(INSTALL_HINT)


def _yaml(value: str) -> str:
    """Quote ``value`` as a YAML string (a JSON string is one)."""
    return json.dumps(value)


def _find_ejabberdctl(executable: str) -> str | None:
    # Debian installs it in /usr/sbin, which is not on every user's PATH.
    return shutil.which(executable) or shutil.which(executable, path="/usr/sbin:/usr/local/sbin")


def _wait_gone(pid: int, ports: tuple[int, ...], timeout: float) -> None:
    """Return once process ``pid`` is gone (or a zombie whose ports are all free again), or after ``timeout`` s.

    A zombie alone is not enough: the VM's other threads may still hold its sockets for a moment.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return
        if state in ("Z", "X") and not any(port_in_use(port) for port in ports):
            return
        time.sleep(0.02)


class EjabberdServer(LocalXmppServer):
    """One ejabberd node with a generated config, bound to 127.0.0.1; the interface of ``ProsodyServer``.

    ``directory`` holds everything (a temporary directory, removed on ``close()``, when None); as root it must be
    reachable by the ``ejabberd`` user (a directory under /tmp is). Ports given as 0 are picked on the first
    ``start()`` and kept for later starts.
    """

    _NAME = "ejabberd"
    _ERROR = EjabberdError
    _NOT_INSTALLED = EjabberdNotInstalledError
    _WS_PATH = "/ws"
    _LOG_FILE = "logs/ejabberd.log"
    _OUTPUT_FILE = "ejabberd.out"
    _MORE_LOGS = ("logs/error.log",)

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
        dist_port: int = 0,
        executable: str = "ejabberdctl",
        ready_timeout: float = 30.0,
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
        self._dist_port = dist_port

    @property
    def dist_port(self) -> int:
        """The Erlang distribution port (what ``ejabberdctl`` commands talk to), on 127.0.0.1."""
        return self._dist_port

    @property
    def pid(self) -> int | None:
        """The running ejabberd's (Erlang VM's) process id, or None."""
        if not self.running:
            return None
        try:
            return int((self.directory / "ejabberd.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def kill(self) -> None:
        """Kill ejabberd with SIGKILL (a crash, for restart tests) and reap it; a no-op when it is not running.

        Unlike Prosody, what was written in the last ``DURABLE_AFTER`` seconds can be lost (measured: an account
        registered just before the kill is gone after the restart, one registered 2.5 s before survives): Mnesia
        writes its transaction log through a delayed-write buffer. ``stop()`` loses nothing.
        """
        vm = self.pid
        super().kill()
        if vm is not None:  # the VM is ejabberdctl's child: it may outlive its parent for a moment
            _wait_gone(vm, tuple(self._ports().values()), self._stop_timeout)

    # -- hooks ---------------------------------------------------------------------------------------------------

    def _find_executable(self) -> str | None:
        return _find_ejabberdctl(self._executable)

    def _write_config(self, cert_dir: Path) -> None:
        directory = self.directory
        for sub in ("spool", "logs", "upload"):
            (directory / sub).mkdir(exist_ok=True)
        (directory / "ejabberd.yml").write_text(self._render_config(cert_dir))
        (directory / "ejabberdctl.cfg").write_text(self._render_ctl_config())
        if os.geteuid() == 0:
            self._hand_over(directory)

    def _spawn(self, binary: str, output: IO[bytes]) -> subprocess.Popen[bytes]:
        directory = self.directory
        ctl_config, config = directory / "ejabberdctl.cfg", directory / "ejabberd.yml"
        command = [binary, "--ctl-config", str(ctl_config), "--config", str(config)]
        command += ["--spool", str(directory / "spool"), "--logs", str(directory / "logs"), "foreground"]
        # HOME: the Erlang cookie is kept in our directory, not in the ejabberd user's home.
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(directory), "LANG": "C.UTF-8"}
        # As root: start ejabberdctl as the ejabberd user ourselves (it would otherwise `su`, which resets HOME).
        as_user = self._user() if os.geteuid() == 0 else None
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            env=env,
            cwd=directory,
            start_new_session=True,  # one process group: kill() reaches the Erlang VM and its helpers
            user=None if as_user is None else as_user.pw_uid,
            group=None if as_user is None else as_user.pw_gid,
            extra_groups=None if as_user is None else [],
        )

    def _ports(self) -> dict[str, int]:
        return {
            "c2s": self._c2s_port,
            "c2s direct TLS": self._xmpps_port,
            "http": self._http_port,
            "https": self._https_port,
            "Erlang distribution": self._dist_port,
        }

    def _all_listening(self, log: str) -> bool:
        """True once ejabberd logged every listener of ours as accepting connections."""
        ports = (self._c2s_port, self._xmpps_port, self._http_port, self._https_port)
        return all(f" connections at {LOOPBACK}:{port} for " in log for port in ports)

    def _pick_ports(self) -> set[int]:
        taken = super()._pick_ports()
        self._dist_port = pick_port(self._dist_port, taken)
        return taken

    def _terminate(self) -> None:
        # The Erlang VM shuts down cleanly on SIGTERM; ejabberdctl (its parent shell) then exits.
        pid = self.pid
        if pid is None:
            self._signal_group(signal.SIGTERM)
        else:
            os.kill(pid, signal.SIGTERM)

    def _kill(self) -> None:
        self._signal_group(signal.SIGKILL)  # the whole group: the VM and the helpers it started

    # -- internals -----------------------------------------------------------------------------------------------

    def _signal_group(self, signum: int) -> None:
        process = self._process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)

    def _render_config(self, cert_dir: Path) -> str:
        template = resources.files("rostra_xmpp").joinpath("ejabberd.yml.in").read_text(encoding="utf-8")
        upload = ""
        if self._upload:
            upload = "\n".join(
                [
                    "  # XEP-0363 upload: slots on the http listener's /upload; the PUT and GET URL are the same.",
                    "  mod_http_upload:",
                    f"    put_url: {_yaml(f'http://{LOOPBACK}:{self._http_port}/upload')}",
                    f"    docroot: {_yaml(str(self.directory / 'upload'))}",
                    f"    max_size: {_UPLOAD_SIZE_LIMIT}",
                    "    thumbnail: false",
                ]
            )
        return Template(template).substitute(
            domain=_yaml(self._domain),
            cert_file=_yaml(str(cert_dir / "server.crt")),
            key_file=_yaml(str(cert_dir / "server.key")),
            ca_cert_file=_yaml(str(cert_dir / "ca.crt")),
            c2s_port=self._c2s_port,
            xmpps_port=self._xmpps_port,
            http_port=self._http_port,
            https_port=self._https_port,
            max_stanza_size=_MAX_STANZA_SIZE,
            upload_module=upload,
        )

    def _render_ctl_config(self) -> str:
        # Sourced by ejabberdctl (a shell script); our values hold no shell metacharacters but are quoted anyway.
        lines = [
            "# ejabberdctl settings from rostra_xmpp._ejabberd (used instead of /etc/ejabberd/ejabberdctl.cfg).",
            f"ERLANG_NODE='rostra{self._dist_port}@localhost'",
            f"ERL_DIST_PORT={self._dist_port}",
            f"INET_DIST_INTERFACE={LOOPBACK}",
            f"EJABBERD_PID_PATH='{self.directory / 'ejabberd.pid'}'",
            f"CONTRIB_MODULES_PATH='{self.directory / 'contrib'}'",
            "EJABBERD_BYPASS_WARNINGS=true",
            'ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0"',
        ]
        return "\n".join(lines) + "\n"

    @staticmethod
    def _user() -> pwd.struct_passwd:
        try:
            return pwd.getpwnam(_USER)
        except KeyError as error:
            raise EjabberdError(
                f"There is no '{_USER}' user: reinstall the ejabberd package. {INSTALL_HINT}"
            ) from error

    def _hand_over(self, directory: Path) -> None:
        """Give the ejabberd user our directory (the server runs as that user), after checking it can reach it."""
        user = self._user()
        for parent in directory.parents:
            if parent.stat().st_mode & 0o001 == 0 and parent.stat().st_uid != user.pw_uid:
                raise EjabberdError(
                    f"The ejabberd user cannot reach {directory}: {parent} is not searchable by others. "
                    "Pick a directory under /tmp (or leave it to the launcher)"
                )
        for path in [directory, *directory.rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)
