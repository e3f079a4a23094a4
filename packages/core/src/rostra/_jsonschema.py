"""Rostra's public JSON as JSON Schema, generated from the msgspec schemas (the single source of truth).

``rostra schema`` prints it; ``docs/rostra.schema.json`` is the committed copy, which a test keeps equal to
what this module generates. Other runtimes validate Rostra's JSON against it, including every line of the
``rostra bridge`` protocol (``bridge``: request, responseLine, errorLine, eventLine; see docs/bridge.md).
"""

from __future__ import annotations

import json
from typing import Any, Final

import msgspec

from ._bridge import Request, RequestId
from ._schemas import (
    ContactsResponse,
    CurrentJidResponse,
    Event,
    LastSeenResponse,
    MetadataResponse,
    ProfileResponse,
    RegisterResponse,
    StatusResponse,
)

__all__ = ["ErrorLine", "ErrorResponse", "build_schema", "schema_json"]


class ErrorResponse(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """What every failure renders as (``RostraError.to_dict()``)."""

    status_code: int
    message: str


class ErrorLine(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A bridge answer that failed; ``id`` is null when the request's id could not be read."""

    id: RequestId | None
    error: ErrorResponse


#: Each documented response, by the call that returns it.
RESPONSES: Final = {
    "register": RegisterResponse,
    "connect": StatusResponse,
    "logout": StatusResponse,
    "getUserProfile": ProfileResponse,
    "setUserProfile": ProfileResponse,
    "getLastSeen": LastSeenResponse,
    "getCurrentUserJid": CurrentJidResponse,
    "getMetadata": MetadataResponse,
    "addContact": StatusResponse,
    "removeContact": StatusResponse,
    "acceptContact": StatusResponse,
    "declineContact": StatusResponse,
    "getContacts": ContactsResponse,
}


def build_schema() -> dict[str, Any]:
    """One JSON Schema document: ``$defs`` for every type; ``responses`` by call, ``event``, ``error``, ``bridge``."""
    response_types = list(dict.fromkeys(RESPONSES.values()))
    types: list[Any] = [*response_types, Event, ErrorResponse, Request, ErrorLine, RequestId]
    refs, defs = msgspec.json.schema_components(types, ref_template="#/$defs/{name}")
    by_type = dict(zip(types, refs, strict=True))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Rostra public JSON",
        "description": (
            "Responses of every call, the error shape, the events listeners and streams receive, "
            "and the lines of the `rostra bridge` protocol."
        ),
        "$defs": defs,
        "responses": {call: by_type[kind] for call, kind in RESPONSES.items()},
        "event": by_type[Event],
        "error": by_type[ErrorResponse],
        "bridge": {
            "request": by_type[Request],
            "responseLine": _response_line(by_type[RequestId], [by_type[kind] for kind in response_types]),
            "errorLine": by_type[ErrorLine],
            "eventLine": by_type[Event],
        },
    }


def _response_line(request_id: dict[str, Any], responses: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"id": ID, "response": ...}``: any documented response (``responses[method]`` is the exact one)."""
    return {
        "title": "ResponseLine",
        "type": "object",
        "properties": {"id": request_id, "response": {"anyOf": responses}},
        "required": ["id", "response"],
        "additionalProperties": False,
    }


def schema_json() -> str:
    """The schema as stable text (sorted keys, two-space indent, a final newline)."""
    return json.dumps(build_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
