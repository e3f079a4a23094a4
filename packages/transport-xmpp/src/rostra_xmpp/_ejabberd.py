"""A local ejabberd for tests: generated config, CA and certificate, subprocess lifecycle (Debian's ejabberd 23.01).

Rules of this module:
- Everything the server needs (config, ejabberdctl config, CA, certificate, Mnesia spool, uploads, logs, the
  Erlang cookie) lives in one directory; nothing of the machine's own ejabberd set-up (/etc/ejabberd, its service,
  /var/lib/ejabberd) is read or changed: ``ejabberdctl`` is pointed at our files with --ctl-config/--config.
- Every listener is bound to 127.0.0.1, the Erlang distribution port too (no epmd); ports given as 0 are picked
  once and kept, so ``kill()`` then ``start()`` brings the same server back on the same ports with the same data.
- As root, the server runs as the ``ejabberd`` user (as Debian's ejabberdctl insists): the directory is handed to it.
- The API is synchronous, like ``ProsodyServer``'s, and every wait has a timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from importlib import resources
from pathlib import Path
from string import Template
from types import TracebackType

from rostra_xmpp._local_server import LOOPBACK, free_port, port_in_use, stream_features_received, write_certificates

__all__ = ["DURABLE_AFTER", "INSTALL_HINT", "EjabberdError", "EjabberdNotInstalledError", "EjabberdServer"]

INSTALL_HINT = (
    "ejabberd is not installed: run `apt-get install -y ejabberd` (Debian/Ubuntu), or scripts/ensure-ejabberd"
)
_USER = "ejabberd"  # Debian's ejabberdctl runs the server as this user when started by root
_UPLOAD_SIZE_LIMIT = 10 * 1024 * 1024
_MAX_STANZA_SIZE = 1024 * 1024  # as the suite's Prosody (c2s_stanza_size_limit)
_LOG_TAIL_LINES = 30
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


class EjabberdServer:
    """One ejabberd node with a generated config, bound to 127.0.0.1; the interface of ``ProsodyServer``.

    ``directory`` holds everything (a temporary directory, removed on ``close()``, when None); as root it must be
    reachable by the ``ejabberd`` user (a directory under /tmp is). Ports given as 0 are picked on the first
    ``start()`` and kept for later starts.
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
        dist_port: int = 0,
        executable: str = "ejabberdctl",
        ready_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self._directory = Path(directory).resolve() if directory is not None else None
        self._owns_directory = directory is None
        self._c2s_port = c2s_port
        self._http_port = http_port
        self._xmpps_port = xmpps_port
        self._https_port = https_port
        self._dist_port = dist_port
        self._domain = domain
        self._upload = upload
        self._executable = executable
        self._ready_timeout = ready_timeout
        self._stop_timeout = stop_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    # -- what clients need ---------------------------------------------------------------------------------------

    @property
    def directory(self) -> Path:
        """The server's directory; raises RuntimeError before the first ``start()`` when it is a temporary one."""
        if self._directory is None:
            raise RuntimeError("the ejabberd directory is created by start()")
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
        """The HTTP port (WebSocket ``/ws`` and uploads); 0 until the first ``start()`` when it was to be picked."""
        return self._http_port

    @property
    def xmpps_port(self) -> int:
        """The direct-TLS client port (``xmpps://``); 0 until the first ``start()`` when it was to be picked."""
        return self._xmpps_port

    @property
    def https_port(self) -> int:
        """The HTTPS port (``wss://``); 0 until the first ``start()`` when it was to be picked."""
        return self._https_port

    @property
    def dist_port(self) -> int:
        """The Erlang distribution port (what ``ejabberdctl`` commands talk to), on 127.0.0.1."""
        return self._dist_port

    @property
    def xmpp_url(self) -> str:
        return f"xmpp://{LOOPBACK}:{self._c2s_port}"

    @property
    def xmpps_url(self) -> str:
        return f"xmpps://{LOOPBACK}:{self._xmpps_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{LOOPBACK}:{self._http_port}/ws"

    @property
    def wss_url(self) -> str:
        """The WebSocket endpoint over TLS (the certificate is for the domain, signed by ``ca_file``)."""
        return f"wss://{LOOPBACK}:{self._https_port}/ws"

    @property
    def ca_file(self) -> Path:
        """The PEM file of the CA that signed the server's certificate."""
        return self.directory / "certs" / "ca.crt"

    @property
    def log_file(self) -> Path:
        """ejabberd's own log (info level)."""
        return self.directory / "logs" / "ejabberd.log"

    @property
    def pid(self) -> int | None:
        """The running ejabberd's (Erlang VM's) process id, or None."""
        if not self.running:
            return None
        try:
            return int((self.directory / "ejabberd.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def info(self) -> dict[str, str]:
        """What a client needs, in the shape ``rostra dev-server`` prints."""
        return {"xmpp": self.xmpp_url, "ws": self.ws_url, "caFile": str(self.ca_file), "domain": self._domain}

    # -- lifecycle -----------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start ejabberd and return once it serves stream features on every listener; a no-op when running.

        Raises EjabberdNotInstalledError without ``ejabberdctl``, EjabberdError when one of its ports is in use
        (before starting it), and EjabberdError (with the tail of its log) when it exits or is not ready in time.
        """
        if self.running:
            return
        binary = _find_ejabberdctl(self._executable)
        if binary is None:
            raise EjabberdNotInstalledError
        ctl_config, config = self._prepare()
        self._refuse_ports_in_use()
        self._log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        directory = self.directory
        command = [binary, "--ctl-config", str(ctl_config), "--config", str(config)]
        command += ["--spool", str(directory / "spool"), "--logs", str(directory / "logs"), "foreground"]
        # HOME: the Erlang cookie is kept in our directory, not in the ejabberd user's home.
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(directory), "LANG": "C.UTF-8"}
        # As root: start ejabberdctl as the ejabberd user ourselves (it would otherwise `su`, which resets HOME).
        as_user = self._user() if os.geteuid() == 0 else None
        with (directory / "ejabberd.out").open("ab") as output:
            self._process = subprocess.Popen(
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
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise

    def stop(self) -> None:
        """Stop ejabberd with SIGTERM (SIGKILL after the stop timeout) and reap it; a no-op when not running."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            # The Erlang VM shuts down cleanly on SIGTERM; ejabberdctl (its parent shell) then exits.
            pid = self.pid
            if pid is None:
                self._signal_group(signal.SIGTERM)
            else:
                os.kill(pid, signal.SIGTERM)
            try:
                process.wait(self._stop_timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                process.wait()
        self._signal_group(signal.SIGKILL)  # helpers the VM left behind
        self._process = None

    def kill(self) -> None:
        """Kill ejabberd with SIGKILL (a crash, for restart tests) and reap it; a no-op when it is not running.

        Unlike Prosody, what was written in the last ``DURABLE_AFTER`` seconds can be lost (measured: an account
        registered just before the kill is gone after the restart, one registered 2.5 s before survives): Mnesia
        writes its transaction log through a delayed-write buffer. ``stop()`` loses nothing.
        """
        process = self._process
        if process is None:
            return
        vm = self.pid
        self._signal_group(signal.SIGKILL)
        process.wait()
        self._process = None
        if vm is not None:  # the VM is ejabberdctl's child: it may outlive its parent for a moment
            _wait_gone(vm, tuple(self._ports().values()), self._stop_timeout)

    def close(self) -> None:
        """Stop ejabberd and remove the directory if it is a temporary one of our own."""
        self.stop()
        if self._owns_directory and self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None

    def __enter__(self) -> EjabberdServer:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        ports = f"c2s={self._c2s_port} xmpps={self._xmpps_port} http={self._http_port} https={self._https_port}"
        return f"<EjabberdServer {self._domain} {ports} {state}>"

    # -- internals -----------------------------------------------------------------------------------------------

    def _signal_group(self, signum: int) -> None:
        process = self._process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)

    def _ports(self) -> dict[str, int]:
        return {
            "c2s": self._c2s_port,
            "c2s direct TLS": self._xmpps_port,
            "http": self._http_port,
            "https": self._https_port,
            "Erlang distribution": self._dist_port,
        }

    def _pick_ports(self) -> None:
        taken: set[int] = set()
        for name in ("_c2s_port", "_http_port", "_xmpps_port", "_https_port", "_dist_port"):
            port = getattr(self, name)
            while port == 0 or port in taken:
                port = free_port()
            setattr(self, name, port)
            taken.add(port)

    def _prepare(self) -> tuple[Path, Path]:
        """Create the directory, ports, certificates (once) and both config files; return their paths."""
        if self._directory is None:
            self._directory = Path(tempfile.mkdtemp(prefix="rostra-ejabberd-"))
        directory = self._directory
        for sub in ("spool", "logs", "upload", "certs"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        cert_dir = directory / "certs"
        if not all((cert_dir / name).exists() for name in ("ca.crt", "server.crt", "server.key")):
            write_certificates(cert_dir, self._domain)
        self._pick_ports()
        config = directory / "ejabberd.yml"
        config.write_text(self._render_config(cert_dir))
        ctl_config = directory / "ejabberdctl.cfg"
        ctl_config.write_text(self._render_ctl_config())
        if os.geteuid() == 0:
            self._hand_over(directory)
        return ctl_config, config

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

    def _refuse_ports_in_use(self) -> None:
        for service, port in self._ports().items():
            if port_in_use(port):
                raise EjabberdError(
                    f"Cannot start ejabberd: port {port} on {LOOPBACK} ({service}) is in use by another program: "
                    "pick another port, or 0 for a free one"
                )

    def _all_listening(self, log: str) -> bool:
        """True once ejabberd logged every listener of ours as accepting connections."""
        ports = (self._c2s_port, self._xmpps_port, self._http_port, self._https_port)
        return all(f" connections at {LOOPBACK}:{port} for " in log for port in ports)

    def _wait_ready(self) -> None:
        """Return once this ejabberd logged its listeners open and serves stream features; else raise."""
        assert self._process is not None
        deadline = time.monotonic() + self._ready_timeout
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                raise EjabberdError(f"ejabberd exited with status {code} while starting.\n{self._log_tail()}")
            remaining = max(0.1, deadline - time.monotonic())
            if self._all_listening(self._new_log_text()) and stream_features_received(
                self._c2s_port, self._domain, min(2.0, remaining)
            ):
                return
            time.sleep(0.1)
        raise EjabberdError(
            f"ejabberd was not ready on {LOOPBACK}:{self._c2s_port} within {self._ready_timeout:g} s.\n"
            f"{self._log_tail()}"
        )

    def _new_log_text(self) -> str:
        try:
            with self.log_file.open("rb") as log:
                log.seek(self._log_offset)
                return log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def _log_tail(self) -> str:
        parts = []
        for path in (self.log_file, self.directory / "logs" / "error.log", self.directory / "ejabberd.out"):
            try:
                lines = path.read_text(errors="replace").splitlines()[-_LOG_TAIL_LINES:]
            except FileNotFoundError:
                continue
            parts.append(f"--- {path.name} (last lines) ---\n" + "\n".join(lines))
        return "\n".join(parts) or "(ejabberd wrote no log)"
