"""The published JSON Schema: `rostra schema` prints what the msgspec schemas generate, and docs/ holds it."""

from __future__ import annotations

from pathlib import Path

import pytest

from rostra._jsonschema import RESPONSES, build_schema, schema_json
from rostra.cli import main

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "rostra.schema.json"


def test_the_committed_schema_equals_the_generated_one() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == schema_json()


def test_rostra_schema_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert capsys.readouterr().out == schema_json()


def test_every_call_has_its_response_schema() -> None:
    schema = build_schema()

    assert sorted(schema["responses"]) == sorted(RESPONSES)
    assert schema["responses"]["getUserProfile"] == {"$ref": "#/$defs/ProfileResponse"}
    assert schema["error"] == {"$ref": "#/$defs/ErrorResponse"}


def test_the_profile_schema_uses_the_documented_names() -> None:
    profile = build_schema()["$defs"]["Profile"]

    assert sorted(profile["properties"]) == [
        "email",
        "image",
        "isAdminBlocked",
        "mobileNumber",
        "nickName",
        "shareContactDetails",
        "status",
        "thumbImage",
        "userId",
        "userJid",
    ]
