"""``rostra bridge`` reads at most ``MAX_LINE_BYTES`` of a request line: a longer one is a 400 and is skipped."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tracemalloc
import uuid
from typing import Any

import pytest

from rostra import _bridge

pytestmark = pytest.mark.anyio

LIMIT = 1024
TOO_LONG = {
    "id": None,
    "error": {
        "statusCode": 400,
        "message": f"Bad request: the line is longer than {LIMIT} bytes, the bridge's limit, and was skipped: send a "
        "smaller request (an image as a file path or URL)",
    },
}
NOT_CONNECTED = {"statusCode": 401, "message": "Not connected: call connect(username, password) first"}


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _request(request_id: int, method: str, params: dict[str, Any] | None = None, *, size: int = 0) -> bytes:
    """A request line (no newline), padded with JSON whitespace to ``size`` bytes when given."""
    line = json.dumps({"id": request_id, "method": method, **({"params": params} if params else {})}).encode()
    return line + b" " * max(0, size - len(line))


async def _serve(stdin: Any) -> list[dict[str, Any]]:
    out = io.BytesIO()
    status = await _bridge.run_bridge(stdin=stdin, stdout=out, server=f"memory://bridge-limit-{uuid.uuid4().hex}")
    assert status == 0
    return [json.loads(line) for line in out.getvalue().splitlines()]


def _registered(line: dict[str, Any]) -> dict[str, Any]:
    """``line`` with the register answer's random password checked for shape and left out."""
    data = dict(line["response"]["data"])
    assert isinstance(data.pop("password"), str)
    return {"id": line["id"], "statusCode": line["response"]["statusCode"], **data}


async def test_a_line_one_byte_over_the_limit_is_400_and_the_next_request_is_answered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_bridge, "MAX_LINE_BYTES", LIMIT)
    over = _request(1, "register", {"userIdentifier": "skipped"}, size=LIMIT + 1)  # valid, but never parsed
    after = _request(2, "register", {"userIdentifier": "alice"})

    lines = await _serve(io.BytesIO(over + b"\n" + after + b"\n"))

    assert lines[0] == TOO_LONG
    assert [_registered(line) for line in lines[1:]] == [
        {
            "id": 2,
            "statusCode": 200,
            "username": "alice",
            "isProfileUpdated": False,
            "isSandbox": False,
            "userJid": "alice@localhost",
        }
    ]


async def test_a_line_of_exactly_the_limit_is_answered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_bridge, "MAX_LINE_BYTES", LIMIT)
    exact = _request(7, "getCurrentUserJid", size=LIMIT)

    lines = await _serve(io.BytesIO(exact + b"\n"))

    assert (len(exact), lines) == (LIMIT, [{"id": 7, "error": NOT_CONNECTED}])


class _HugeLineThenRequest(io.RawIOBase):
    """``size`` bytes of one line, handed out a chunk at a time without ever existing whole, then ``tail``."""

    def __init__(self, size: int, tail: bytes) -> None:
        self._left = size
        self._tail = tail

    def readable(self) -> bool:
        return True

    def read1(self, n: int = -1) -> bytes:
        if self._left > 0:
            chunk = min(self._left, n if n > 0 else 65536)
            self._left -= chunk
            return b"x" * chunk
        tail, self._tail = self._tail, b""
        return tail


async def test_a_32_mib_line_is_skipped_without_being_held(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_bridge, "MAX_LINE_BYTES", LIMIT)
    source = _HugeLineThenRequest(32 * 1024 * 1024, b"\n" + _request(3, "getMetadata") + b"\n")

    tracemalloc.start()
    try:
        lines = await _serve(source)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert lines == [TOO_LONG, {"id": 3, "error": NOT_CONNECTED}]
    assert peak < 4 * 1024 * 1024  # the limit plus a read chunk or two, not the 32 MiB line


def test_the_real_limit_is_16_mib_in_the_rostra_bridge_process() -> None:
    request = _request(4, "getCurrentUserJid")
    stdin = b" " * (16 * 1024 * 1024) + b"x\n" + request + b"\n"

    done = subprocess.run(
        [sys.executable, "-m", "rostra.cli", "bridge", "--server", "memory://"],
        input=stdin,
        capture_output=True,
        timeout=120,
        check=False,
    )

    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert (done.returncode, _bridge.MAX_LINE_BYTES) == (0, 16 * 1024 * 1024)
    assert lines == [
        {
            "id": None,
            "error": {
                "statusCode": 400,
                "message": f"Bad request: the line is longer than {16 * 1024 * 1024} bytes, the bridge's limit, and "
                "was skipped: send a smaller request (an image as a file path or URL)",
            },
        },
        {"id": 4, "error": NOT_CONNECTED},
    ]
