"""The event bus: what happened to containers and images, for ``/events``."""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import attrs
import trio

_HISTORY = 1024
_SUBSCRIBER_BUFFER = 256


@attrs.frozen
class Event:
    type: str  # "container" | "image" | "network" | "volume"
    action: str
    actor_id: str
    attributes: Mapping[str, str]
    time_nano: int

    def to_json(self) -> dict[str, Any]:
        seconds = self.time_nano // 1_000_000_000
        document: dict[str, Any] = {
            "Type": self.type,
            "Action": self.action,
            "Actor": {"ID": self.actor_id, "Attributes": dict(self.attributes)},
            "scope": "local",
            "time": seconds,
            "timeNano": self.time_nano,
        }
        if self.type == "container":
            # Clients from before API 1.22 read these.
            document.update(status=self.action, id=self.actor_id,
                            **{"from": self.attributes.get("image", "")})
        return document


class EventBus:
    """Fan-out of events to subscribers, with a short history for ``since``.

    A subscriber that falls far behind is dropped (its channel closes) rather than slowing the
    engine down: the engine must never block on a slow ``/events`` reader.
    """

    def __init__(self) -> None:
        self._history: collections.deque[Event] = collections.deque(maxlen=_HISTORY)
        self._subscribers: set[trio.MemorySendChannel[Event]] = set()

    def publish(self, type_: str, action: str, actor_id: str,
                attributes: Mapping[str, str]) -> None:
        event = Event(type_, action, actor_id, dict(attributes), time.time_ns())
        self._history.append(event)
        for channel in list(self._subscribers):
            try:
                channel.send_nowait(event)
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                self._subscribers.discard(channel)
                channel.close()

    def history(self) -> list[Event]:
        return list(self._history)

    @contextmanager
    def subscribe(self) -> Iterator[trio.MemoryReceiveChannel[Event]]:
        send, receive = trio.open_memory_channel[Event](_SUBSCRIBER_BUFFER)
        self._subscribers.add(send)
        try:
            with receive:
                yield receive
        finally:
            self._subscribers.discard(send)
            send.close()
