"""Rostra's public JSON as JSON Schema, generated from the msgspec schemas (the single source of truth).

``rostra schema`` prints it; ``docs/rostra.schema.json`` is the committed copy, which a test keeps equal to
what this module generates. Other runtimes validate Rostra's JSON against it.
"""

from __future__ import annotations

import json
from typing import Any, Final

import msgspec

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

__all__ = ["ErrorResponse", "build_schema", "schema_json"]


class ErrorResponse(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """What every failure renders as (``RostraError.to_dict()``)."""

    status_code: int
    message: str


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
    """One JSON Schema document: ``$defs`` for every type; ``responses`` by call, ``event`` and ``error``."""
    types: list[Any] = [*dict.fromkeys(RESPONSES.values()), Event, ErrorResponse]
    refs, defs = msgspec.json.schema_components(types, ref_template="#/$defs/{name}")
    by_type = dict(zip(types, refs, strict=True))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Rostra public JSON",
        "description": "Responses of every call, the error shape, and the events listeners and streams receive.",
        "$defs": defs,
        "responses": {call: by_type[kind] for call, kind in RESPONSES.items()},
        "event": by_type[Event],
        "error": by_type[ErrorResponse],
    }


def schema_json() -> str:
    """The schema as stable text (sorted keys, two-space indent, a final newline)."""
    return json.dumps(build_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
