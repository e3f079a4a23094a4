"""The Client keyword options every XMPP carrier accepts, checked in one place.

Both XMPP transports accept the same set, so a program moves between ``xmpp://`` and ``ws://`` by changing the
URL only. Each carrier applies what concerns it and documents the rest:

- ``allow_insecure_ws`` (bool, False): ws:// to a non-loopback host. xmpp://: no effect (always TLS).
- ``allow_plain`` (bool, False): SASL PLAIN over ws:// on loopback. xmpp://: no effect (aioxmpp sends PLAIN
  only over TLS).
- ``ping_interval`` (seconds, 30): the WebSocket ping period; a missing pong (within ``request_timeout``) ends the
  session. xmpp://: after that long without a byte from the server aioxmpp pings, and no answer within
  ``request_timeout`` ends the session.
- ``max_message_bytes`` (1 MiB): the largest server message accepted over WebSocket; on xmpp:// the largest
  top-level stanza (over it: the stream error policy-violation, and the session is lost).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from rostra._errors import InvalidInputError

__all__ = ["CARRIER_OPTIONS", "CarrierOptions", "carrier_options"]

CARRIER_OPTIONS: Final = frozenset({"allow_insecure_ws", "allow_plain", "ping_interval", "max_message_bytes"})


@dataclass(frozen=True, slots=True)
class CarrierOptions:
    allow_insecure_ws: bool = False
    allow_plain: bool = False
    ping_interval: float = 30.0
    max_message_bytes: int = 1_048_576


def _flag(extra: Mapping[str, object], key: str) -> bool:
    value = extra.get(key, False)
    if not isinstance(value, bool):
        raise InvalidInputError(f"The {key} option must be True or False, not {value!r}")
    return value


def _positive(extra: Mapping[str, object], key: str, default: float) -> float:
    value = extra.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
        raise InvalidInputError(f"The {key} option must be a positive number")
    return float(value)


def carrier_options(extra: Mapping[str, object]) -> CarrierOptions:
    """The carrier options given to the Client, checked (400 for a wrong type or value)."""
    return CarrierOptions(
        allow_insecure_ws=_flag(extra, "allow_insecure_ws"),
        allow_plain=_flag(extra, "allow_plain"),
        ping_interval=_positive(extra, "ping_interval", 30.0),
        max_message_bytes=int(_positive(extra, "max_message_bytes", 1_048_576)),
    )
