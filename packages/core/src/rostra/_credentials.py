"""Credential stores: where the SDK keeps the passwords that ``register()`` made, keyed by (server URL, username).

Rules:
- A store never logs or shows a password; ``Credentials``' repr hides it.
- ``FileCredentialStore`` writes a 0600 JSON file atomically (temp file in the same folder, fsync, ``os.replace``)
  inside a folder it creates with mode 0700.
"""

from __future__ import annotations

import abc
import contextlib
import os
import tempfile
from pathlib import Path

import msgspec

__all__ = ["CredentialStore", "Credentials", "FileCredentialStore", "MemoryCredentialStore"]


class Credentials(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One account's login: what ``connect(username, password)`` needs, and the JID it binds."""

    username: str
    password: str
    user_jid: str

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password='***', user_jid={self.user_jid!r})"


class CredentialStore(abc.ABC):
    """Keeps ``Credentials`` per (server URL, username). Implementations must be safe to call from one event loop."""

    @abc.abstractmethod
    def get(self, server: str, username: str) -> Credentials | None:
        """The stored credentials, or None."""

    @abc.abstractmethod
    def put(self, server: str, credentials: Credentials) -> None:
        """Store (or replace) the credentials of ``credentials.username`` on ``server``."""

    @abc.abstractmethod
    def delete(self, server: str, username: str) -> None:
        """Forget them; a missing entry is not an error."""


class MemoryCredentialStore(CredentialStore):
    """The default: credentials live as long as the store object (one Client, unless shared)."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], Credentials] = {}

    def get(self, server: str, username: str) -> Credentials | None:
        return self._entries.get((server, username))

    def put(self, server: str, credentials: Credentials) -> None:
        self._entries[(server, credentials.username)] = credentials

    def delete(self, server: str, username: str) -> None:
        self._entries.pop((server, username), None)

    def __repr__(self) -> str:
        return f"MemoryCredentialStore(entries={len(self._entries)})"


_FileContent = dict[str, dict[str, Credentials]]
_decoder = msgspec.json.Decoder(_FileContent)
_encoder = msgspec.json.Encoder()


class FileCredentialStore(CredentialStore):
    """A JSON file ``{server: {username: {username, password, userJid}}}`` with mode 0600.

    Raises ``OSError`` if the file cannot be read or written, ``msgspec.DecodeError`` if it is not such a file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def get(self, server: str, username: str) -> Credentials | None:
        return self._read().get(server, {}).get(username)

    def put(self, server: str, credentials: Credentials) -> None:
        content = self._read()
        content.setdefault(server, {})[credentials.username] = credentials
        self._write(content)

    def delete(self, server: str, username: str) -> None:
        content = self._read()
        if content.get(server, {}).pop(username, None) is not None:
            if not content[server]:
                del content[server]
            self._write(content)

    def _read(self) -> _FileContent:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        return _decoder.decode(data) if data.strip() else {}

    def _write(self, content: _FileContent) -> None:
        folder = self.path.parent
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
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
