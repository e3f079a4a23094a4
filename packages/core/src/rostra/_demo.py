"""``rostra demo``: the whole Profile API against one server, as another app would use it.

Registers two users with fresh identifiers, connects both, makes them contacts, sets the first one's profile
(an image file, then an image URL), shows the profile event the second receives, fetches the profile, logs the
first out, asks its last seen, asks the current JID, and logs out. One JSON line per step; exit 0 only if every
step succeeded. Safe to run again and again against the same server.
"""

from __future__ import annotations

import io
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from ._client import Client
from ._errors import RostraError
from ._schemas import ContactEvent, Event, Metadata, ProfileEvent, Response, encode

__all__ = ["run_demo"]

IMAGE_URL = "https://rostra.invalid/avatars/demo.png"


def _demo_png() -> bytes:
    from PIL import Image

    image = Image.new("RGB", (256, 256))
    image.putdata([(x, y, (x + y) // 2) for y in range(256) for x in range(256)])
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


class _Demo:
    def __init__(self) -> None:
        self.failed = False

    def print_step(self, name: str, response: Response | RostraError) -> None:
        from .cli import emit, hide_password

        if isinstance(response, RostraError):
            self.failed = True
            emit({"step": name, "error": response.to_dict()})
        else:
            emit({"step": name, "response": hide_password(response.to_dict())})

    async def step(self, name: str, call: Awaitable[Response]) -> Response | None:
        try:
            response = await call
        except RostraError as exc:
            self.print_step(name, exc)
            return None
        self.print_step(name, response)
        return response


def _print_event(received_by: str, event: Event) -> None:
    import json

    from .cli import emit

    emit({**json.loads(encode(event)), "receivedBy": received_by})


def _printer(received_by: str) -> Callable[[Event], None]:
    return lambda event: _print_event(received_by, event)


async def _wait_for(
    stream: MemoryObjectReceiveStream[Event], predicate: Callable[[Event], bool], within: float, received_by: str
) -> Event | None:
    """The first event on ``stream`` that satisfies ``predicate``, printed; None after ``within`` seconds."""
    with anyio.move_on_after(within):
        async for event in stream:
            if predicate(event):
                _print_event(received_by, event)
                return event
    return None


async def run_demo(*, event_timeout: float = 10.0, **client_options: Any) -> int:
    demo = _Demo()
    suffix = uuid.uuid4().hex[:12]
    with tempfile.TemporaryDirectory() as tmp:
        image_path = Path(tmp) / "avatar.png"
        image_path.write_bytes(_demo_png())
        async with Client(**client_options) as alice_sdk, Client(**client_options) as bob_sdk:
            metadata: Metadata = {"plan": "demo", "beta": True}
            alice_reg = await demo.step("register", alice_sdk.register(f"Alice{suffix}", metadata))
            bob_reg = await demo.step("register", bob_sdk.register(f"Bob{suffix}"))
            if alice_reg is None or bob_reg is None:
                return 1
            alice, bob = alice_reg.data, bob_reg.data  # type: ignore[attr-defined]
            alice_sdk.add_connection_listener(_printer(alice.user_jid))
            bob_sdk.add_connection_listener(_printer(bob.user_jid))
            async with alice_sdk.events() as alice_events, bob_sdk.events() as bob_events:
                if await demo.step("connect", alice_sdk.connect(alice.username, alice.password)) is None:
                    return 1
                if await demo.step("connect", bob_sdk.connect(bob.username, bob.password)) is None:
                    return 1
                await demo.step("getMetadata", alice_sdk.get_metadata())
                await demo.step("addContact", alice_sdk.add_contact(bob.user_jid))
                await demo.step("addContact", bob_sdk.add_contact(alice.user_jid))
                mutual = await _wait_for(
                    bob_events,
                    lambda e: isinstance(e, ContactEvent) and e.data.user_jid == alice.user_jid and e.data.is_friend,
                    event_timeout,
                    bob.user_jid,
                )
                contacts = await demo.step("getContacts", bob_sdk.get_contacts())
                if mutual is None and not (contacts and any(c.is_friend for c in contacts.data)):  # type: ignore[attr-defined]
                    demo.print_step("contactsMutual", RostraError("The contacts did not become mutual in time"))

                def from_alice(event: Event) -> bool:
                    return isinstance(event, ProfileEvent) and event.data.user_jid == alice.user_jid

                for label, image in (("file", str(image_path)), ("url", IMAGE_URL)):
                    fields: dict[str, Any] = {"image": image}
                    if label == "file":
                        fields.update(
                            name="Alice 👩‍💻",
                            status="Hello from Rostra <&>",
                            mobile_number="+14155552671",
                            email="alice@example.com",
                        )
                    updated = await demo.step("setUserProfile", alice_sdk.set_user_profile(**fields))
                    if updated is None:
                        continue
                    stored = updated.data  # type: ignore[attr-defined]

                    def is_update(event: Event, stored: Any = stored) -> bool:
                        return from_alice(event) and isinstance(event, ProfileEvent) and event.data == stored

                    received = await _wait_for(bob_events, is_update, event_timeout, bob.user_jid)
                    if received is None:
                        demo.print_step("profileEvent", RostraError(f"{bob.user_jid} got no profile event in time"))
                await _drain(alice_events)
                await demo.step("getUserProfile", bob_sdk.get_user_profile(alice.user_jid))
                await demo.step("logout", alice_sdk.logout())
                await anyio.sleep(1.1)  # so that last seen shows the time since that logout, not "0: online"
                await demo.step("getLastSeen", bob_sdk.get_last_seen(alice.user_jid))
                await demo.step("getCurrentUserJid", bob_sdk.get_current_user_jid())
                await demo.step("logout", bob_sdk.logout())
    return 1 if demo.failed else 0


async def _drain(stream: MemoryObjectReceiveStream[Event]) -> None:
    while True:
        try:
            stream.receive_nowait()
        except (anyio.WouldBlock, anyio.EndOfStream):
            return
