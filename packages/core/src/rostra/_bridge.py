"""``rostra bridge``: one Client behind a JSON-lines protocol on stdin/stdout, for programs in other runtimes.

Rules (docs/bridge.md is the full description):
- Each input line is one request ``{"id": ID, "method": NAME, "params": {...}}``; ID is an integer or a string,
  NAME a documented call (``register`` ... ``getContacts``), params its documented camelCase arguments.
  Blank lines are ignored. A line longer than ``MAX_LINE_BYTES`` is answered with a 400 error line (id null) as
  soon as it is over, the rest of it is skipped, and the next line is read as usual: the bridge never holds more
  than the limit plus one read chunk of a line.
- Each request runs in its own task, so answers may come out of order; each answer is ONE line,
  ``{"id": ID, "response": RESPONSE}`` or ``{"id": ID, "error": {"statusCode": N, "message": TEXT}}``.
  A line that is not JSON, names no known method or has bad params is answered with a 400 error line, whose
  id is null when none could be read.
- Every listener event is a line of its own: exactly the event's ``to_dict()`` (it carries the tag ``event``).
- stdout carries protocol lines only (Python-level prints are sent to stderr while the bridge runs); logs go to
  stderr. Passwords are not masked: the register response is the documented one.
- EOF on stdin: the requests under way are answered, then the Client logs out and closes; exit status 0.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import typing
from collections.abc import AsyncIterator, Awaitable
from typing import Any, BinaryIO, Final, TypeAlias

import anyio
import anyio.abc
import msgspec

from ._client import Client
from ._errors import RostraError
from ._schemas import Event, Metadata, Response

__all__ = ["MAX_LINE_BYTES", "METHODS", "Request", "RequestId", "parse_request", "run_bridge"]

log = logging.getLogger("rostra.bridge")

#: The longest request line the bridge reads, in bytes without its newline (docs/bridge.md). Read at each line,
#: so a test may lower it.
MAX_LINE_BYTES: Final = 16 * 1024 * 1024
_READ_CHUNK: Final = 64 * 1024

RequestId: TypeAlias = int | str


class _Params(msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """Base of every request's params: the documented camelCase names, nothing else."""


class NoParams(_Params, frozen=True, kw_only=True):
    """The params of a call that takes no arguments (may be omitted)."""


class RegisterParams(_Params, frozen=True, kw_only=True):
    user_identifier: str
    metadata: Metadata | None = None


class ConnectParams(_Params, frozen=True, kw_only=True):
    username: str
    password: str

    def __repr__(self) -> str:  # never the password
        return f"ConnectParams(username={self.username!r})"


class UserJidParams(_Params, frozen=True, kw_only=True):
    to_user_jid: str


class SetProfileParams(_Params, frozen=True, kw_only=True):
    """The fields to change ("" clears one); a field left out keeps its value."""

    name: str | msgspec.UnsetType = msgspec.UNSET
    image: str | msgspec.UnsetType = msgspec.UNSET
    status: str | msgspec.UnsetType = msgspec.UNSET
    mobile_number: str | msgspec.UnsetType = msgspec.UNSET
    email: str | msgspec.UnsetType = msgspec.UNSET
    share_contact_details: bool | msgspec.UnsetType = msgspec.UNSET


class ContactParams(_Params, frozen=True, kw_only=True):
    jid: str


class _Request(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="method"):
    id: RequestId

    def call(self, sdk: Client) -> Awaitable[Response]:
        """The Client call this request stands for."""
        raise NotImplementedError


class RegisterRequest(_Request, frozen=True, kw_only=True, tag="register"):
    params: RegisterParams

    def call(self, sdk: Client) -> Awaitable[Response]:
        return sdk.register(self.params.user_identifier, self.params.metadata)


class ConnectRequest(_Request, frozen=True, kw_only=True, tag="connect"):
    params: ConnectParams

    def call(self, sdk: Client) -> Awaitable[Response]:
        return sdk.connect(self.params.username, self.params.password)


class LogoutRequest(_Request, frozen=True, kw_only=True, tag="logout"):
    params: NoParams = msgspec.field(default_factory=NoParams)

    def call(self, sdk: Client) -> Awaitable[Response]:
        return sdk.logout()


class GetUserProfileRequest(_Request, frozen=True, kw_only=True, tag="getUserProfile"):
    params: UserJidParams

    def call(self, sdk: Client) -> Awaitable[Response]:
        return sdk.get_user_profile(self.params.to_user_jid)


class SetUserProfileRequest(_Request, frozen=True, kw_only=True, tag="setUserProfile"):
    params: SetProfileParams = msgspec.field(default_factory=SetProfileParams)

    def call(self, sdk: Client) -> Awaitable[Response]:
        given = msgspec.structs.asdict(self.params)
        return sdk.set_user_profile(**{k: v for k, v in given.items() if v is not msgspec.UNSET})


class GetLastSeenRequest(_Request, frozen=True, kw_only=True, tag="getLastSeen"):
    params: UserJidParams

    def call(self, sdk: Client) -> Awaitable[Response]:
        return sdk.get_last_seen(self.params.to_user_jid)


class GetCurrentUserJidRequest(_Request, frozen=True, kw_only=True, tag="getCurrentUserJid"):
    params: NoParams = msgspec.field(default_factory=NoParams)

    def call(self, sdk: Client) -> Awaitable[Response]:
        return sdk.get_current_user_jid()


class GetMetadataRequest(_Request, frozen=True, kw_only=True, tag="getMetadata"):
    params: NoParams = msgspec.field(default_factory=NoParams)

    def call(self, sdk: Client) -> Awaitable[Response]:
        return sdk.get_metadata()


class AddContactRequest(_Request, frozen=True, kw_only=True, tag="addContact"):
    params: ContactParams

    def call(self, sdk: Client) -> Awaitable[Response]:
        return sdk.add_contact(self.params.jid)


class RemoveContactRequest(_Request, frozen=True, kw_only=True, tag="removeContact"):
    params: ContactParams

    def call(self, sdk: Client) -> Awaitable[Response]:
        return sdk.remove_contact(self.params.jid)


class AcceptContactRequest(_Request, frozen=True, kw_only=True, tag="acceptContact"):
    params: ContactParams

    def call(self, sdk: Client) -> Awaitable[Response]:
        return sdk.accept_contact(self.params.jid)


class DeclineContactRequest(_Request, frozen=True, kw_only=True, tag="declineContact"):
    params: ContactParams

    def call(self, sdk: Client) -> Awaitable[Response]:
        return sdk.decline_contact(self.params.jid)


class GetContactsRequest(_Request, frozen=True, kw_only=True, tag="getContacts"):
    params: NoParams = msgspec.field(default_factory=NoParams)

    def call(self, sdk: Client) -> Awaitable[Response]:
        return sdk.get_contacts()


Request: TypeAlias = (
    RegisterRequest
    | ConnectRequest
    | LogoutRequest
    | GetUserProfileRequest
    | SetUserProfileRequest
    | GetLastSeenRequest
    | GetCurrentUserJidRequest
    | GetMetadataRequest
    | AddContactRequest
    | RemoveContactRequest
    | AcceptContactRequest
    | DeclineContactRequest
    | GetContactsRequest
)


#: The method names, in the order of the documentation.
METHODS: Final = tuple(kind.__struct_config__.tag for kind in typing.get_args(Request))


class _IdOnly(msgspec.Struct, frozen=True):
    """What is read of a request that failed validation: its id, if it has a usable one."""

    id: RequestId | None = None


_request_decoder = msgspec.json.Decoder(Request)
_id_decoder = msgspec.json.Decoder(_IdOnly)
_encoder = msgspec.json.Encoder()


def parse_request(line: bytes) -> Request | dict[str, Any]:
    """The request on ``line``, or the error line (a dict) that answers it: 400, with the id if one was readable."""
    try:
        return _request_decoder.decode(line)
    except msgspec.ValidationError as exc:
        problem = f"Bad request: {exc}"
        if str(exc).endswith("at `$.method`"):
            problem += f": the method must be one of {', '.join(METHODS)}"
    except msgspec.DecodeError as exc:
        problem = f"Bad request: not a JSON object on one line ({exc})"
    try:
        request_id = _id_decoder.decode(line).id
    except (msgspec.ValidationError, msgspec.DecodeError):
        request_id = None
    return _error_line(request_id, 400, problem)


def _error_line(request_id: RequestId | None, status_code: int, message: str) -> dict[str, Any]:
    return {"id": request_id, "error": {"statusCode": status_code, "message": message}}


def _too_long_line(limit: int) -> dict[str, Any]:
    return _error_line(
        None,
        400,
        f"Bad request: the line is longer than {limit} bytes, the bridge's limit, and was skipped: send a smaller "
        "request (an image as a file path or URL)",
    )


async def _read_lines(source: anyio.AsyncFile[bytes]) -> AsyncIterator[bytes | None]:
    """Each line of ``source`` without its newline, or None for one over ``MAX_LINE_BYTES`` (then skipped).

    None comes as soon as the line is over the limit; nothing more of that line is kept.
    """
    read = source.read1 if hasattr(source.wrapped, "read1") else source.read  # read1: what a pipe has now
    line = bytearray()
    skipping = False  # inside a line already answered as too long
    while chunk := await read(_READ_CHUNK):
        limit = MAX_LINE_BYTES
        start = 0
        while start < len(chunk):
            end = chunk.find(b"\n", start)
            stop = len(chunk) if end < 0 else end
            if not skipping:
                line += chunk[start:stop]
                if len(line) > limit:
                    line.clear()
                    skipping = True
                    yield None
                elif end >= 0:
                    yield bytes(line)
                    line.clear()
            if end < 0:
                break
            skipping = False
            start = end + 1
    if line:
        yield bytes(line)


class _Bridge:
    """Writes protocol lines to ``out`` and answers requests with ``sdk``."""

    def __init__(self, sdk: Client, out: BinaryIO) -> None:
        self._sdk = sdk
        self._out = out
        self._broken = False

    def write(self, line: object) -> None:
        """One protocol line, flushed. A reader that went away is logged once; later lines are dropped."""
        if self._broken:
            return
        try:
            self._out.write(_encoder.encode(line) + b"\n")
            self._out.flush()
        except (BrokenPipeError, ValueError):  # ValueError: the stream was closed
            self._broken = True
            log.warning("stdout is closed: the bridge's further output is dropped")

    def on_event(self, event: Event) -> None:
        self.write(event)

    async def answer(self, request: Request) -> None:
        try:
            response = await request.call(self._sdk)
        except RostraError as exc:
            self.write({"id": request.id, "error": exc.to_dict()})
        except Exception:
            log.exception("The bridge failed on a %s request", type(request).__name__)
            self.write(_error_line(request.id, 500, "The bridge failed on this request: its stderr has the details"))
        else:
            self.write({"id": request.id, "response": response})

    async def serve(self, lines: anyio.AsyncFile[bytes]) -> None:
        """Answer every line until EOF; returns once every request under way has been answered."""
        async with anyio.create_task_group() as group:
            async for line in _read_lines(lines):
                if line is None:
                    self.write(_too_long_line(MAX_LINE_BYTES))
                    continue
                if not line.strip():
                    continue
                parsed = parse_request(line)
                if isinstance(parsed, dict):
                    self.write(parsed)
                else:
                    group.start_soon(self.answer, parsed)

    def listen(self) -> None:
        sdk = self._sdk
        sdk.add_connection_listener(self.on_event)
        sdk.add_user_profile_listener(self.on_event)
        sdk.add_contact_request_listener(self.on_event)
        sdk.add_contact_listener(self.on_event)


async def run_bridge(*, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None, **client_options: Any) -> int:
    """Serve the protocol until EOF on ``stdin`` and return 0; 1 if the Client cannot be made (an error line says why).

    ``client_options`` are ``rostra.Client``'s keywords; ``stdin``/``stdout`` default to the process's.
    """
    out = stdout if stdout is not None else sys.stdout.buffer
    source = stdin if stdin is not None else sys.stdin.buffer
    with contextlib.redirect_stdout(sys.stderr):  # stray prints must not break the protocol
        try:
            sdk = Client(**client_options)
        except RostraError as exc:
            out.write(_encoder.encode({"id": None, "error": exc.to_dict()}) + b"\n")
            out.flush()
            return 1
        async with sdk:
            bridge = _Bridge(sdk, out)
            bridge.listen()
            await bridge.serve(anyio.wrap_file(source))
            try:
                await sdk.logout()
            except RostraError as exc:
                log.warning("logout at EOF failed: %s", exc.message)
    return 0
