"""Listeners and event streams: how the Client hands events to the application.

Rules:
- A listener is a plain callable or a coroutine function taking one event. Plain ones run at once; an awaitable
  result runs as a task in the Client's task group. A listener that raises is logged and never breaks the Client.
- Every event also goes to every open ``EventStream`` (an anyio ``MemoryObjectReceiveStream`` for the app). A
  stream holds at most ``maxlen`` events; when a slow consumer lets it fill up, the OLDEST event is dropped (counted
  in ``dropped``), so the Client never blocks.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc

from ._errors import InvalidInputError
from ._schemas import ConnectionEvent, ContactEvent, ContactRequestEvent, Event, ProfileEvent

__all__ = ["EventStream", "Listener", "Listeners", "ResultHandler"]

log = logging.getLogger("rostra")

Listener = Callable[[Any], object]
ResultHandler = Callable[[object], None]
STREAM_MAXLEN = 1024

_KINDS: tuple[type[Event], ...] = (ConnectionEvent, ProfileEvent, ContactRequestEvent, ContactEvent)


class EventStream:
    """One ``events()`` subscription: an anyio memory object stream whose oldest items are dropped when full."""

    def __init__(self, maxlen: int = STREAM_MAXLEN) -> None:
        self._send, self.receive = anyio.create_memory_object_stream[Event](maxlen)
        self._oldest = self.receive.clone()  # used only to drop the oldest item when the buffer is full
        self.dropped = 0

    def push(self, event: Event) -> None:
        try:
            self._send.send_nowait(event)
        except anyio.WouldBlock:
            try:
                self._oldest.receive_nowait()
                self.dropped += 1
            except anyio.WouldBlock:
                pass
            self._send.send_nowait(event)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass  # the consumer is gone

    def close(self) -> None:
        """End the iteration (after what is buffered)."""
        self._send.close()
        self._oldest.close()


class Listeners:
    """Listeners per event kind, the open streams, and the task group that runs coroutine listeners."""

    def __init__(self) -> None:
        self._by_kind: dict[type[Event], list[Listener]] = {kind: [] for kind in _KINDS}
        self._streams: list[EventStream] = []
        self.task_group: anyio.abc.TaskGroup | None = None

    def add(self, kind: type[Event], listener: Listener) -> Callable[[], None]:
        """Register ``listener`` for events of ``kind``; return a function that removes it (idempotent)."""
        if not callable(listener):
            raise InvalidInputError("A listener must be a callable or a coroutine function")
        entry = self._by_kind[kind]
        entry.append(listener)

        def remove() -> None:
            if listener in entry:
                entry.remove(listener)

        return remove

    def open_stream(self) -> EventStream:
        stream = EventStream()
        self._streams.append(stream)
        return stream

    def close_stream(self, stream: EventStream) -> None:
        if stream in self._streams:
            self._streams.remove(stream)
        stream.close()

    def close_all(self) -> None:
        for stream in list(self._streams):
            self.close_stream(stream)

    def emit(self, event: Event, on_result: ResultHandler | None = None) -> None:
        """Give ``event`` to its listeners and to every stream; ``on_result`` gets each listener's (awaited) result."""
        for stream in self._streams:
            stream.push(event)
        for listener in list(self._by_kind[type(event)]):
            self._run(listener, event, on_result)

    def _run(self, listener: Listener, event: Event, on_result: ResultHandler | None) -> None:
        try:
            result = listener(event)
        except Exception:
            log.exception("A %s listener raised; the Client carries on", type(event).__name__)
            return
        if inspect.isawaitable(result):
            if self.task_group is None:
                log.warning("A coroutine listener was skipped: use the Client as 'async with rostra.Client(...)'")
                if inspect.iscoroutine(result):
                    result.close()
                return
            self.task_group.start_soon(self._await, result, type(event).__name__, on_result)
        elif on_result is not None:
            on_result(result)

    @staticmethod
    async def _await(awaitable: Awaitable[object], kind: str, on_result: ResultHandler | None) -> None:
        try:
            result = await awaitable
        except Exception:
            log.exception("A %s listener raised; the Client carries on", kind)
            return
        if on_result is not None:
            on_result(result)
