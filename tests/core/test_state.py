"""The state table: every (state, input) pair, and any sequence of Client calls on memory://, obey it."""

from __future__ import annotations

import uuid

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rostra
from rostra._state import REFUSALS, TRANSITIONS, Input, SessionMachine, State


@given(state=st.sampled_from(State), event=st.sampled_from(Input))
def test_every_state_and_input_follows_the_table_or_is_refused_unchanged(state: State, event: Input) -> None:
    machine = SessionMachine()
    machine.state = state
    if (state, event) in TRANSITIONS:
        assert machine.handle(event) == TRANSITIONS[(state, event)][1]
        assert machine.state == TRANSITIONS[(state, event)][0]
    else:
        with pytest.raises(REFUSALS[state][event]) as caught:
            machine.handle(event)
        assert (caught.value.local, machine.state) == (True, state)


# -- the property on memory:// --------------------------------------------------------------------------------

JIDS = ["peer@localhost", "nobody@localhost", "bad jid", "x@elsewhere.example"]
OPERATIONS = st.one_of(
    st.tuples(st.just("connect"), st.sampled_from(["good", "bad"])),
    st.tuples(st.just("logout"), st.none()),
    st.tuples(st.just("register"), st.sampled_from(["fresh", "bad id", "peer"])),
    st.tuples(st.just("get_user_profile"), st.sampled_from(JIDS)),
    st.tuples(st.just("set_user_profile"), st.sampled_from([{"name": "Ok"}, {"name": "x" * 31}, {"email": "nope"}])),
    st.tuples(st.just("get_last_seen"), st.sampled_from(JIDS)),
    st.tuples(st.just("get_current_user_jid"), st.none()),
    st.tuples(st.just("get_metadata"), st.none()),
    st.tuples(st.just("add_contact"), st.sampled_from(JIDS)),
    st.tuples(st.just("remove_contact"), st.sampled_from(JIDS)),
    st.tuples(st.just("get_contacts"), st.none()),
    st.tuples(st.just("accept_contact"), st.sampled_from(JIDS)),
    st.tuples(st.just("aclose"), st.none()),
)

STATE_ERRORS = {rostra.NotConnectedError, rostra.AlreadyConnectedError, rostra.ClientClosedError}

INPUTS = {
    "register": Input.REGISTER,
    "logout": Input.LOGOUT,
    "aclose": Input.CLOSE,
    "get_user_profile": Input.GET_PROFILE,
    "set_user_profile": Input.SET_PROFILE,
    "get_last_seen": Input.GET_LAST_SEEN,
    "get_current_user_jid": Input.GET_CURRENT_JID,
    "get_metadata": Input.GET_METADATA,
    "add_contact": Input.ADD_CONTACT,
    "remove_contact": Input.REMOVE_CONTACT,
    "get_contacts": Input.GET_CONTACTS,
    "accept_contact": Input.ANSWER_CONTACT_REQUEST,
}


def predicted(state: State, name: str, outcome: BaseException | None) -> State:
    """The state the table says a call leaves behind, given how it ended."""
    if name == "connect":
        if (state, Input.CONNECT) not in TRANSITIONS:
            return state
        after = TRANSITIONS[(state, Input.CONNECT)][0]
        result = Input.AUTH_FAILED if isinstance(outcome, rostra.AuthenticationError) else Input.CONNECT_SUCCEEDED
        return TRANSITIONS[(after, result)][0]
    event = INPUTS[name]
    return TRANSITIONS[(state, event)][0] if (state, event) in TRANSITIONS else state


async def run_sequence(operations: list[tuple[str, object]]) -> None:
    url = f"memory://state-{uuid.uuid4().hex}"
    async with rostra.Client(url) as peer_sdk, rostra.Client(url) as sdk:
        peer = (await peer_sdk.register("peer")).data
        await peer_sdk.connect(peer.username, peer.password)
        me = (await sdk.register(f"me{uuid.uuid4().hex[:8]}")).data
        for name, argument in operations:
            before = sdk.state
            allowed = (before, Input.CONNECT if name == "connect" else INPUTS[name]) in TRANSITIONS
            outcome: BaseException | None = None
            try:
                if name == "connect":
                    await sdk.connect(me.username, me.password if argument == "good" else "wrong")
                elif name == "register":
                    identifier = {"fresh": f"n{uuid.uuid4().hex}", "bad id": "bad id", "peer": "peer"}[str(argument)]
                    await sdk.register(identifier)
                elif name == "set_user_profile":
                    await sdk.set_user_profile(**argument)  # type: ignore[arg-type]
                elif argument is None:
                    await getattr(sdk, name)()
                else:
                    await getattr(sdk, name)(argument)
            except rostra.RostraError as exc:
                outcome = exc
            if not allowed:
                event = Input.CONNECT if name == "connect" else INPUTS[name]
                assert type(outcome) is REFUSALS[before][event], (name, before, outcome)
            else:
                assert type(outcome) not in STATE_ERRORS, (name, before, outcome)
            assert sdk.state == predicted(before, name, outcome), (name, before, outcome)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=st.lists(OPERATIONS, max_size=12))
def test_any_sequence_of_client_calls_obeys_the_state_table(operations: list[tuple[str, object]]) -> None:
    anyio.run(run_sequence, operations)


# -- reconnection rows --------------------------------------------------------------------------------------------

_I, _C = Input, rostra.ConnectionStatus
_UP = [_I.CONNECT, _I.CONNECT_SUCCEEDED]


@pytest.mark.parametrize(
    ("inputs", "announced", "final"),
    [
        (
            [*_UP, _I.CONNECTION_LOST, _I.CONNECT_FAILED, _I.CONNECT_FAILED, _I.CONNECT_SUCCEEDED],
            [_C.CONNECTING, _C.CONNECTED, _C.RECONNECTING, _C.CONNECTED],
            State.CONNECTED,
        ),
        (
            [*_UP, _I.CONNECTION_LOST, _I.AUTH_FAILED],
            [_C.CONNECTING, _C.CONNECTED, _C.RECONNECTING, _C.AUTHFAIL],
            State.IDLE,
        ),
        ([*_UP, _I.CONNECTION_LOST, _I.LOGOUT], [_C.CONNECTING, _C.CONNECTED, _C.RECONNECTING, _C.LOGOUT], State.IDLE),
        ([*_UP, _I.CONNECTION_LOST, _I.CLOSE], [_C.CONNECTING, _C.CONNECTED, _C.RECONNECTING, _C.LOGOUT], State.CLOSED),
        (
            [*_UP, _I.CONNECTION_LOST, _I.CONNECTION_ENDED],
            [_C.CONNECTING, _C.CONNECTED, _C.RECONNECTING, _C.DISCONNECTED],
            State.IDLE,
        ),
        ([*_UP, _I.CONNECTION_ENDED], [_C.CONNECTING, _C.CONNECTED, _C.DISCONNECTED], State.IDLE),
        ([*_UP, _I.CONNECTION_LOST, _I.REGISTER], [_C.CONNECTING, _C.CONNECTED, _C.RECONNECTING], State.RECONNECTING),
    ],
    ids=["restored", "authfail", "logout", "aclose", "conflict-on-retry", "conflict", "register-meanwhile"],
)
def test_reconnection_announces_one_status_per_change(
    inputs: list[Input], announced: list[object], final: State
) -> None:
    machine = SessionMachine()
    seen = [status for event in inputs if (status := machine.handle(event)) is not None]
    assert (seen, machine.state) == (announced, final)


@pytest.mark.parametrize("request_input", [_I.GET_PROFILE, _I.SET_PROFILE, _I.GET_CONTACTS, _I.GET_CURRENT_JID])
def test_a_session_request_while_reconnecting_is_a_local_503_and_changes_nothing(request_input: Input) -> None:
    machine = SessionMachine()
    machine.state = State.RECONNECTING
    with pytest.raises(rostra.ReconnectingError) as caught:
        machine.handle(request_input)
    assert (caught.value.status_code, caught.value.local, isinstance(caught.value, rostra.UnreachableError)) == (
        503,
        True,
        True,
    )
    assert machine.state is State.RECONNECTING


def test_connect_while_reconnecting_is_a_local_409() -> None:
    machine = SessionMachine()
    machine.state = State.RECONNECTING
    with pytest.raises(rostra.AlreadyConnectedError) as caught:
        machine.handle(_I.CONNECT)
    assert (caught.value.status_code, caught.value.local, machine.state) == (409, True, State.RECONNECTING)
