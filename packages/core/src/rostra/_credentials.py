"""Credential stores: where the SDK keeps the passwords that ``register()`` made, keyed by (XMPP domain, username):
an account is its JID, so every URL and transport that reaches the same domain finds the same credentials.

Rules:
- A store never logs or shows a password; ``Credentials``' repr hides it.
- ``FileCredentialStore`` writes a 0600 JSON file atomically (temp file in the same folder, fsync, ``os.replace``)
  inside a folder it creates with mode 0700; a crash mid-write leaves the old file (and a temp file, removed by
  the next write). Every read-modify-write holds an exclusive advisory lock
  (``fcntl.flock``) on a sibling 0600 file ``<name>.lock``, so processes sharing one file (several ``rostra
  register`` at once) never lose each other's entries. Reads take no lock: the atomic replace makes them safe.
- A file that is not a credentials file is an ``InvalidInputError`` naming it; it is never overwritten.
"""

from __future__ import annotations

import abc
import contextlib
import fcntl
import glob
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import msgspec

from ._errors import InvalidInputError

__all__ = ["CredentialStore", "Credentials", "FileCredentialStore", "MemoryCredentialStore"]


class Credentials(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One account's login: what ``connect(username, password)`` needs, and the JID it binds."""

    username: str
    password: str
    user_jid: str

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password='***', user_jid={self.user_jid!r})"


class CredentialStore(abc.ABC):
    """Keeps ``Credentials`` per (XMPP domain, username). Implementations must be safe to call from one event loop."""

    @abc.abstractmethod
    def get(self, domain: str, username: str) -> Credentials | None:
        """The stored credentials, or None."""

    @abc.abstractmethod
    def put(self, domain: str, credentials: Credentials) -> None:
        """Store (or replace) the credentials of ``credentials.username`` on ``domain``."""

    @abc.abstractmethod
    def delete(self, domain: str, username: str) -> None:
        """Forget them; a missing entry is not an error."""


class MemoryCredentialStore(CredentialStore):
    """The default: credentials live as long as the store object (one Client, unless shared)."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], Credentials] = {}

    def get(self, domain: str, username: str) -> Credentials | None:
        return self._entries.get((domain, username))

    def put(self, domain: str, credentials: Credentials) -> None:
        self._entries[(domain, credentials.username)] = credentials

    def delete(self, domain: str, username: str) -> None:
        self._entries.pop((domain, username), None)

    def __repr__(self) -> str:
        return f"MemoryCredentialStore(entries={len(self._entries)})"


_FileContent = dict[str, dict[str, Credentials]]
_decoder = msgspec.json.Decoder(_FileContent)
_encoder = msgspec.json.Encoder()


class FileCredentialStore(CredentialStore):
    """A JSON file ``{domain: {username: {username, password, userJid}}}`` with mode 0600.

    ``put`` and ``delete`` are safe across processes (and threads): each holds an exclusive ``flock`` on the
    sibling file ``<name>.lock`` (mode 0600) from its read to its atomic replace. POSIX only (``fcntl``).

    Raises ``OSError`` if the file cannot be read or written, ``InvalidInputError`` if it is not such a file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    def get(self, domain: str, username: str) -> Credentials | None:
        return self._read().get(domain, {}).get(username)

    def put(self, domain: str, credentials: Credentials) -> None:
        with self._locked():
            content = self._read()
            content.setdefault(domain, {})[credentials.username] = credentials
            self._write(content)

    def delete(self, domain: str, username: str) -> None:
        if not self.path.exists():
            return
        with self._locked():
            content = self._read()
            if content.get(domain, {}).pop(username, None) is not None:
                if not content[domain]:
                    del content[domain]
                self._write(content)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the exclusive lock of the lock file (created 0600, in a folder created 0700) until the block ends."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released when fd is closed
            yield
        finally:
            os.close(fd)

    def _read(self) -> _FileContent:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:  # a directory, no permission...
            raise InvalidInputError(
                f"the credentials file {str(self.path)!r} cannot be read ({exc.strerror}): give a file path"
            ) from None
        if not data.strip():
            return {}
        try:
            return _decoder.decode(data)
        except msgspec.DecodeError:  # ValidationError included
            raise InvalidInputError(
                f"the credentials file {str(self.path)!r} is not a Rostra credentials file (it may be damaged): "
                "fix it or delete it (its accounts' passwords are then lost)"
            ) from None

    def _write(self, content: _FileContent) -> None:
        """Replace the file atomically. Called under the lock, so no other writer is between its mkstemp and its
        replace: a temp file already there was left by a writer that died mid-write (SIGKILL) and is removed."""
        folder = self.path.parent
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        for stale in folder.glob(f".{glob.escape(self.path.name)}.*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{self.path.name}.", suffix=".tmp")  # mkstemp: mode 0600
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(_encoder.encode(content))
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise

    def __repr__(self) -> str:
        return f"FileCredentialStore(path={str(self.path)!r})"
