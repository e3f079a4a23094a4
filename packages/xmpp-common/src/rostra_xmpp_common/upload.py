"""XEP-0363 upload: PUT a file's bytes to the slot's URL over HTTPS, with the headers the slot allows."""

from __future__ import annotations

import ssl
from collections.abc import Mapping

import httpx

from rostra._errors import PayloadTooLargeError, RequestTimeoutError, ServerError, UnreachableError

__all__ = ["put_file"]


async def put_file(
    url: str,
    data: bytes,
    content_type: str,
    headers: Mapping[str, str],
    *,
    verify: ssl.SSLContext | str | bool = True,
    timeout: float = 30.0,  # noqa: ASYNC109 - httpx per-phase timeout, passed through
) -> None:
    """PUT ``data`` to ``url``; returns once the server answered 200 or 201.

    ``verify`` is an SSL context, a CA file path, or False to skip TLS verification (explicit opt-out).
    Raises ``PayloadTooLargeError`` (413), ``RequestTimeoutError`` (408), ``UnreachableError`` (no connection,
    bad certificate) or ``ServerError`` (any other answer).
    """
    if isinstance(verify, str):
        verify = ssl.create_default_context(cafile=verify)
    all_headers = {**headers, "Content-Type": content_type, "Content-Length": str(len(data))}
    try:
        async with httpx.AsyncClient(verify=verify, timeout=timeout) as client:
            response = await client.put(url, content=data, headers=all_headers)
    except httpx.TimeoutException as exc:
        raise RequestTimeoutError("The upload timed out: retry, or raise the timeout option") from exc
    except httpx.TransportError as exc:
        raise UnreachableError(
            f"The upload service could not be reached ({type(exc).__name__}): check the server, and the ca_file "
            "option if its certificate failed verification"
        ) from exc
    if response.status_code == 413:
        raise PayloadTooLargeError("The upload service refused the file as too large: send a smaller image")
    if response.status_code not in (200, 201):
        raise ServerError(f"The upload service answered HTTP {response.status_code}: retry later")
