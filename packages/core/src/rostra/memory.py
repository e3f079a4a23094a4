"""``memory://NAME``: the in-process transport, Rostra's executable specification.

``memory://`` is the server "localhost"; every Client in the process that names the same NAME shares one server.
URL query options (read when the server is first created): ``domain=NAME`` (default ``localhost``), ``upload=0``
(no upload service: images are stored inline). ``get_server(url)`` gives tests the server to drive
(its clock, reachability, stalled operations, dropped connections, changed passwords). A URL with a space or
control character, an unknown or repeated parameter, or a domain that is not a domain name is a 400.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qs, urlsplit

import anyio
import anyio.lowlevel

from ._errors import InvalidInputError
from ._memory_server import MemoryServer, ServerSession
from ._memory_server import get_server as _get_named_server
from ._schemas import Contact, Metadata, ProfileFields
from ._transport import EventSink, Transport, TransportOptions, TransportSession
from ._validate import check_domain

__all__ = ["MemoryServer", "MemoryTransport", "get_server"]


def get_server(url: str = "memory://", domain: str | None = None) -> MemoryServer:
    """The in-process server that ``url`` names (created on first use). A URL it cannot take: 400."""
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise InvalidInputError(f"Server URL {url!r} holds a space or control character: remove it")
    parts = urlsplit(url)
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"domain", "upload"})
    if unknown:
        raise InvalidInputError(
            f"Server URL {url!r} has unknown parameter(s) {', '.join(unknown)}: memory:// understands "
            "?domain=NAME and ?upload=0"
        )
    twice = sorted(key for key, values in query.items() if len(values) > 1)
    if twice:
        raise InvalidInputError(f"Server URL {url!r} gives {', '.join(twice)} more than once: give each parameter once")
    name = parts.netloc or "localhost"
    if "domain" in query:
        try:
            check_domain(query["domain"][0])
        except InvalidInputError:
            raise InvalidInputError(
                f"?domain={query['domain'][0]!r} in the server URL is not a valid domain name: give e.g. "
                "?domain=chat.example.com"
            ) from None
    domain = domain or query.get("domain", ["localhost"])[0]
    upload = query.get("upload", ["1"])[-1] not in ("0", "false", "no", "off")
    return _get_named_server(name, domain=domain, upload_enabled=upload)


class MemoryTransport(Transport):
    """Reaches the in-process server of its URL. Every call is a checkpoint, so it can be cancelled."""

    schemes = ("memory",)

    def __init__(self, url: str, options: TransportOptions) -> None:
        super().__init__(url, options)
        domain = options.extra.get("domain")
        self.server = get_server(url, domain=domain if isinstance(domain, str) else None)

    @property
    def domain(self) -> str:
        return self.server.domain

    async def register_account(self, username: str, password: str) -> None:
        await _gate(self.server, "register")
        self.server.register(username, password)

    async def open_session(self, username: str, password: str, events: EventSink) -> TransportSession:
        await _gate(self.server, "connect")
        return MemorySession(self.server, self.server.login(username, password, events))


class MemorySession(TransportSession):
    """One login on a memory server."""

    def __init__(self, server: MemoryServer, session: ServerSession) -> None:
        self._server = server
        self._session = session

    @property
    def jid(self) -> str:
        return self._server.jid(self._session.username)

    async def get_profile(self, user_jid: str) -> ProfileFields:
        await _gate(self._server, "get_profile")
        return self._server.get_profile(user_jid, reader=self._session)

    async def set_profile(self, fields: ProfileFields) -> ProfileFields:
        await _gate(self._server, "set_profile")
        return self._server.set_profile(self._session, fields)

    async def upload(self, data: bytes, *, filename: str, content_type: str) -> str | None:
        await _gate(self._server, "upload")
        return self._server.upload(data, filename)

    async def get_last_seen(self, user_jid: str) -> int:
        await _gate(self._server, "get_last_seen")
        return self._server.get_last_seen(self._session, user_jid)

    async def get_metadata(self) -> Metadata | None:
        await _gate(self._server, "get_metadata")
        return self._server.get_metadata(self._session)

    async def set_metadata(self, metadata: Metadata) -> None:
        await _gate(self._server, "set_metadata")
        self._server.set_metadata(self._session, metadata)

    async def add_contact(self, user_jid: str) -> None:
        await _gate(self._server, "add_contact")
        self._server.add_contact(self._session, user_jid)

    async def answer_contact_request(self, user_jid: str, *, accept: bool) -> None:
        await _gate(self._server, "answer_contact_request")
        self._server.answer_request(self._session, user_jid, accept=accept)

    async def remove_contact(self, user_jid: str) -> None:
        await _gate(self._server, "remove_contact")
        self._server.remove_contact(self._session, user_jid)

    async def get_contacts(self) -> Sequence[Contact]:
        await _gate(self._server, "get_contacts")
        return self._server.get_contacts(self._session)

    async def close(self) -> None:
        self._server.logout(self._session)


async def _gate(server: MemoryServer, operation: str) -> None:
    """A checkpoint; an operation a test marked as stalled never answers (the Client's timeout ends it)."""
    if operation in server.stalled:
        await anyio.sleep_forever()
    await anyio.lowlevel.checkpoint()
