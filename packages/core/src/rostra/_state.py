"""The session state machine: every state, every input, and the one table of transitions between them.

Rules:
- This module does no I/O and knows no protocol. The Client feeds it inputs and acts on what it returns.
- ``TRANSITIONS[(state, input)]`` is ``(next_state, status_to_announce_or_None)``. Requests that do not change
  the state map to the same state and announce nothing.
- An input the table does not hold is refused: ``SessionMachine.handle`` raises the Local error given by
  ``REFUSALS`` (a ``RostraError`` with ``local = True``) and the state is unchanged.
- A connection status is announced only when the table says so, which makes "once per change" structural.
- A lost connection is one of two inputs: ``CONNECTION_LOST`` (the Client will retry: RECONNECTING) or
  ``CONNECTION_ENDED`` (it will not: a ``conflict``, reconnection off, or no task group to retry in). While
  RECONNECTING a failed retry (``CONNECT_FAILED``) keeps the state and announces nothing; success, an
  authentication failure, a conflict, ``logout()`` and ``aclose()`` each end it with one status.
"""

from __future__ import annotations

import enum

from ._errors import AlreadyConnectedError, ClientClosedError, NotConnectedError, ReconnectingError, RostraError
from ._schemas import ConnectionStatus

__all__ = ["REFUSALS", "TRANSITIONS", "Input", "SessionMachine", "State"]


class State(enum.Enum):
    IDLE = "IDLE"  # initialized, not connected (also after logout or a lost connection)
    CONNECTING = "CONNECTING"  # a connect attempt is under way
    CONNECTED = "CONNECTED"  # authenticated; profile operations allowed
    RECONNECTING = "RECONNECTING"  # the connection was lost; the Client retries with the last credentials
    CLOSED = "CLOSED"  # the Client was closed; nothing more is allowed


class Input(enum.Enum):
    # caller requests
    REGISTER = "REGISTER"
    CONNECT = "CONNECT"
    LOGOUT = "LOGOUT"
    CLOSE = "CLOSE"
    GET_PROFILE = "GET_PROFILE"
    SET_PROFILE = "SET_PROFILE"
    GET_LAST_SEEN = "GET_LAST_SEEN"
    GET_CURRENT_JID = "GET_CURRENT_JID"
    GET_METADATA = "GET_METADATA"
    ADD_CONTACT = "ADD_CONTACT"
    REMOVE_CONTACT = "REMOVE_CONTACT"
    GET_CONTACTS = "GET_CONTACTS"
    ANSWER_CONTACT_REQUEST = "ANSWER_CONTACT_REQUEST"
    # outcomes reported by the driver
    CONNECT_SUCCEEDED = "CONNECT_SUCCEEDED"
    CONNECT_FAILED = "CONNECT_FAILED"
    AUTH_FAILED = "AUTH_FAILED"
    CONNECTION_LOST = "CONNECTION_LOST"  # lost, and the Client will retry
    CONNECTION_ENDED = "CONNECTION_ENDED"  # lost for good: no retry (conflict, reconnect off, no task group)


#: Requests allowed only on a connected session; they never change the state.
SESSION_REQUESTS = (
    Input.GET_PROFILE,
    Input.SET_PROFILE,
    Input.GET_LAST_SEEN,
    Input.GET_CURRENT_JID,
    Input.GET_METADATA,
    Input.ADD_CONTACT,
    Input.REMOVE_CONTACT,
    Input.GET_CONTACTS,
    Input.ANSWER_CONTACT_REQUEST,
)

_S = State
_I = Input
_C = ConnectionStatus

TRANSITIONS: dict[tuple[State, Input], tuple[State, ConnectionStatus | None]] = {
    # registration uses a connection of its own: allowed whenever the Client is open
    (_S.IDLE, _I.REGISTER): (_S.IDLE, None),
    (_S.CONNECTING, _I.REGISTER): (_S.CONNECTING, None),
    (_S.CONNECTED, _I.REGISTER): (_S.CONNECTED, None),
    (_S.RECONNECTING, _I.REGISTER): (_S.RECONNECTING, None),
    # connecting
    (_S.IDLE, _I.CONNECT): (_S.CONNECTING, _C.CONNECTING),
    (_S.CONNECTING, _I.CONNECT_SUCCEEDED): (_S.CONNECTED, _C.CONNECTED),
    (_S.CONNECTING, _I.CONNECT_FAILED): (_S.IDLE, _C.CONNECTIONFAILED),
    (_S.CONNECTING, _I.AUTH_FAILED): (_S.IDLE, _C.AUTHFAIL),
    # leaving
    (_S.IDLE, _I.LOGOUT): (_S.IDLE, None),  # nothing to end: a no-op, announced to nobody
    (_S.CONNECTING, _I.LOGOUT): (_S.IDLE, _C.LOGOUT),
    (_S.CONNECTED, _I.LOGOUT): (_S.IDLE, _C.LOGOUT),
    # losing the connection, and getting it back
    (_S.CONNECTED, _I.CONNECTION_LOST): (_S.RECONNECTING, _C.RECONNECTING),
    (_S.CONNECTED, _I.CONNECTION_ENDED): (_S.IDLE, _C.DISCONNECTED),
    (_S.RECONNECTING, _I.CONNECT_SUCCEEDED): (_S.CONNECTED, _C.CONNECTED),
    (_S.RECONNECTING, _I.CONNECT_FAILED): (_S.RECONNECTING, None),  # retried after its backoff, announced once
    (_S.RECONNECTING, _I.AUTH_FAILED): (_S.IDLE, _C.AUTHFAIL),
    (_S.RECONNECTING, _I.CONNECTION_ENDED): (_S.IDLE, _C.DISCONNECTED),
    (_S.RECONNECTING, _I.LOGOUT): (_S.IDLE, _C.LOGOUT),
    (_S.IDLE, _I.CLOSE): (_S.CLOSED, None),
    (_S.CONNECTING, _I.CLOSE): (_S.CLOSED, _C.LOGOUT),
    (_S.CONNECTED, _I.CLOSE): (_S.CLOSED, _C.LOGOUT),
    (_S.RECONNECTING, _I.CLOSE): (_S.CLOSED, _C.LOGOUT),
    (_S.CLOSED, _I.CLOSE): (_S.CLOSED, None),
    # session requests
    **{(_S.CONNECTED, request): (_S.CONNECTED, None) for request in SESSION_REQUESTS},
}

#: The Local error raised for an input a state does not allow.
REFUSALS: dict[State, dict[Input, type[RostraError]]] = {
    _S.IDLE: dict.fromkeys(Input, NotConnectedError),
    # connect() while one is under way: 409, like connecting twice (the same credentials join it instead: Client)
    _S.CONNECTING: {**dict.fromkeys(Input, NotConnectedError), _I.CONNECT: AlreadyConnectedError},
    _S.CONNECTED: dict.fromkeys(Input, AlreadyConnectedError),
    # while the connection is being restored: session requests are 503 at once; connect() is 409 as when connected
    _S.RECONNECTING: {**dict.fromkeys(Input, ReconnectingError), _I.CONNECT: AlreadyConnectedError},
    _S.CLOSED: dict.fromkeys(Input, ClientClosedError),
}


class SessionMachine:
    """Holds the current state; ``handle`` applies one input through the table."""

    def __init__(self) -> None:
        self.state = State.IDLE

    def allowed(self, event: Input) -> bool:
        return (self.state, event) in TRANSITIONS

    def handle(self, event: Input) -> ConnectionStatus | None:
        """Apply ``event``; return the status to announce (or None). Not allowed: raise, state unchanged."""
        try:
            self.state, announce = TRANSITIONS[(self.state, event)]
        except KeyError:
            raise REFUSALS[self.state][event](_refusal_text(self.state, event)) from None
        return announce


_OUTCOMES = frozenset(
    {Input.CONNECT_SUCCEEDED, Input.CONNECT_FAILED, Input.AUTH_FAILED, Input.CONNECTION_LOST, Input.CONNECTION_ENDED}
)


def _refusal_text(state: State, event: Input) -> str:
    if state is State.CLOSED:
        return "This Client is closed: create a new rostra.Client"
    if state is State.CONNECTED:
        return "Already connected: call logout() before connecting again"
    if state is State.RECONNECTING and event is Input.CONNECT:
        return "The lost connection is being restored: wait for CONNECTED, or call logout() before connecting again"
    if event is Input.CONNECT:
        return "connect() is under way: await it, or call logout() first"
    if event in _OUTCOMES:
        return f"Internal: {event.value} reported while {state.value}"
    if state is State.RECONNECTING:
        return "The connection to the server was lost and is being restored: retry once CONNECTED is announced"
    return "Not connected: call connect(username, password) first"
