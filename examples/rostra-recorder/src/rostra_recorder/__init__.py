"""``record+<scheme>://...``: any Rostra transport, with every call and event written down as JSON lines.

How it is built (the parts every transport has):
- ``RecordingTransport`` subclasses ``rostra.transport.Transport``: it is built as ``Transport(url, options)``,
  names its URL schemes in ``schemes`` and its own keyword options in ``extra_options``, and implements
  ``register_account``, ``open_session``, ``domain`` and ``aclose``.
- ``RecordingSession`` subclasses ``rostra.transport.TransportSession``: one logged-in connection. It only takes
  and returns Rostra's schemas and raises only ``rostra.RostraError`` subclasses (here: whatever the wrapped
  transport raised, unchanged).
- Server-pushed happenings reach the Client through the event sink given to ``open_session``: a plain synchronous
  callable. The recorder passes its own sink that writes the event down, then hands it on.
- Rostra finds the class through the entry point in pyproject.toml (group ``rostra.transports``).
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from rostra import InvalidInputError, RostraError
from rostra.transport import (
    Contact,
    EventSink,
    Metadata,
    ProfileFields,
    Transport,
    TransportEvent,
    TransportOptions,
    TransportSession,
    load_transport,
)

__all__ = ["RecordingSession", "RecordingTransport"]

_PREFIX = "record+"
_T = TypeVar("_T")


class _Recorder:
    """Appends one JSON object per line to ``path`` (or keeps nothing when there is no path)."""

    def __init__(self, path: str | None) -> None:
        self._path = Path(path) if path else None
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        if self._path is None:
            return
        line = json.dumps(record, ensure_ascii=False, default=_plain)
        with self._lock, self._path.open("a", encoding="utf-8") as file:
            file.write(line + "\n")

    async def call(self, record: dict[str, Any], call: Awaitable[_T]) -> _T:
        """Await ``call`` and write ``record`` with its outcome: 200, or the RostraError's status code."""
        try:
            result = await call
        except RostraError as exc:
            self.write({**record, "outcome": exc.status_code})
            raise
        self.write({**record, "outcome": 200})
        return result


def _plain(value: object) -> object:
    """JSON for Rostra's schemas and transport events (msgspec structs and dataclasses)."""
    return msgspec.to_builtins(value)


class RecordingTransport(Transport):
    """Wraps the transport of the URL without its ``record+`` prefix."""

    schemes = ("record+memory", "record+xmpp", "record+xmpps", "record+ws", "record+wss")
    extra_options = frozenset({"record_to"})

    def __init__(self, url: str, options: TransportOptions) -> None:
        super().__init__(url, options)
        if not url[: len(_PREFIX)].lower() == _PREFIX:
            raise InvalidInputError(f"A recording URL starts with {_PREFIX!r}, such as 'record+memory://demo'")
        inner_url = url[len(_PREFIX) :]
        record_to = options.extra.get("record_to")
        if record_to is not None and not isinstance(record_to, str):
            raise InvalidInputError("record_to must be the path of a file to append JSON lines to")
        inner_extra = {key: value for key, value in options.extra.items() if key != "record_to"}
        inner_options = dataclasses.replace(options, extra=inner_extra)
        self.inner = load_transport(inner_url)(inner_url, inner_options)
        self.recorder = _Recorder(record_to)

    @property
    def domain(self) -> str:
        return self.inner.domain

    async def register_account(self, username: str, password: str) -> None:
        record = {"call": "register_account", "username": username}  # never the password
        await self.recorder.call(record, self.inner.register_account(username, password))

    async def open_session(self, username: str, password: str, events: EventSink) -> TransportSession:
        def sink(event: TransportEvent) -> None:
            self.recorder.write({"event": type(event).__name__, "data": event})
            events(event)

        record = {"call": "open_session", "username": username}
        session = await self.recorder.call(record, self.inner.open_session(username, password, sink))
        return RecordingSession(session, self.recorder)

    async def aclose(self) -> None:
        await self.inner.aclose()


class RecordingSession(TransportSession):
    """Hands every call to the wrapped session and writes it down with its outcome."""

    def __init__(self, inner: TransportSession, recorder: _Recorder) -> None:
        self.inner = inner
        self.recorder = recorder

    @property
    def jid(self) -> str:
        return self.inner.jid

    async def get_profile(self, user_jid: str) -> ProfileFields:
        return await self.recorder.call({"call": "get_profile", "userJid": user_jid}, self.inner.get_profile(user_jid))

    async def set_profile(self, fields: ProfileFields) -> ProfileFields:
        return await self.recorder.call({"call": "set_profile", "fields": fields}, self.inner.set_profile(fields))

    async def upload(self, data: bytes, *, filename: str, content_type: str) -> str | None:
        record = {"call": "upload", "filename": filename, "contentType": content_type, "bytes": len(data)}
        return await self.recorder.call(record, self.inner.upload(data, filename=filename, content_type=content_type))

    async def get_last_seen(self, user_jid: str) -> int:
        record = {"call": "get_last_seen", "userJid": user_jid}
        return await self.recorder.call(record, self.inner.get_last_seen(user_jid))

    async def get_metadata(self) -> Metadata | None:
        return await self.recorder.call({"call": "get_metadata"}, self.inner.get_metadata())

    async def set_metadata(self, metadata: Metadata) -> None:
        await self.recorder.call({"call": "set_metadata"}, self.inner.set_metadata(metadata))

    async def add_contact(self, user_jid: str) -> None:
        await self.recorder.call({"call": "add_contact", "userJid": user_jid}, self.inner.add_contact(user_jid))

    async def answer_contact_request(self, user_jid: str, *, accept: bool) -> None:
        record = {"call": "answer_contact_request", "userJid": user_jid, "accept": accept}
        await self.recorder.call(record, self.inner.answer_contact_request(user_jid, accept=accept))

    async def remove_contact(self, user_jid: str) -> None:
        await self.recorder.call({"call": "remove_contact", "userJid": user_jid}, self.inner.remove_contact(user_jid))

    async def get_contacts(self) -> Sequence[Contact]:
        return await self.recorder.call({"call": "get_contacts"}, self.inner.get_contacts())

    async def close(self) -> None:
        self.recorder.write({"call": "close"})
        await self.inner.close()
