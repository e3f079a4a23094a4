"""The model check: several users drive the transport under test and ``memory://`` side by side, in lockstep.

Rules of this module:
- Every user has two Clients: one on the transport under test, one on a fresh ``memory://`` server with the same
  domain (the model). Each step calls the same method with the same arguments on both and compares the outcomes:
  the response (``to_dict()``) or the error's status code and class.
- After each step the two sides must settle to the same observations: every user's connection events, profile
  events and contact-request events (exact sequences), the last contact event per contact, and which contacts the
  Client believes online. A real server delivers some of these a few milliseconds later, so the check waits for
  them, up to ``Target.settle_timeout``; an observation the model does not have fails at once.
- What the comparison normalizes, and nothing else: registration passwords (random on each side), last-seen
  seconds ("0" or "more than 0"), and the order of the contact list.
- The async Clients live in one event loop per example, run by an anyio blocking portal; hypothesis drives the
  steps from the test's thread.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, ClassVar

import anyio
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import settings as Settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test

from .._client import Client
from .._errors import RostraError
from .._schemas import ConnectionEvent, ContactEvent, ContactRequestEvent, ProfileEvent, Response
from .._state import State

__all__ = ["USERS", "Target", "check_model"]

#: How many users each example drives (each with a Client on both sides).
USERS = 3
#: The grace period after the last step, for observations the model does not have that arrive late.
_FINAL_GRACE = 0.1
#: A server counts last seen in whole seconds: a "more than 0" answer needs this long since the logout.
_LAST_SEEN_WAIT = 1.1


@dataclass(frozen=True)
class Target:
    """The transport under test: its server URL, the ``rostra.Client`` keyword options it needs, the event loop.

    ``settle_timeout`` bounds the wait for server-pushed events (seconds).
    """

    url: str
    options: Mapping[str, object] = field(default_factory=dict)
    backend: str = "asyncio"
    settle_timeout: float = 5.0

    def client(self) -> Client:
        """A new ``rostra.Client`` on this target."""
        options: dict[str, Any] = dict(self.options)
        return Client(self.url, **options)

    def __repr__(self) -> str:  # options may hold secrets of the caller's own: show their names only
        return f"Target(url={self.url!r}, options={sorted(self.options)}, backend={self.backend!r})"


# -- what the steps are made of ----------------------------------------------------------------------------------

# Values the Client accepts (mostly): text of letters, digits, punctuation, symbols (emoji) and spaces.
_TEXT = st.text(st.characters(categories=("L", "N", "P", "S", "Zs")), min_size=1, max_size=30)
_NAMES = st.one_of(st.sampled_from(["", "Ann", "Zoë 🎉", "<b>&amp;</b>\"'", " Ann ", "\u0627\u0644\u0639"]), _TEXT)
_STATUSES = st.one_of(st.sampled_from(["", "Busy <at> work & 'home'", "👍🏽" * 10, "y" * 139, "  "]), _TEXT)
_MOBILES = st.sampled_from(["", "+14155552671", "+44 20 7946 0958", "+81 3-1234-5678"])
_EMAILS = st.sampled_from(["", "ann@example.com", "Ann@EXAMPLE.com", "o'brien+chat@example.org"])
_IMAGES = st.sampled_from(["", "https://example.com/a.png", "http://example.com/p?q=1&r=<2>"])
_PROFILE_CHANGES = st.fixed_dictionaries(
    {},
    optional={
        "name": _NAMES,
        "status": _STATUSES,
        "mobile_number": _MOBILES,
        "email": _EMAILS,
        "image": _IMAGES,
        "share_contact_details": st.booleans(),
    },
)
#: One value the Client must refuse (400 or 413, nothing sent), beside valid changes.
_INVALID_CHANGE = st.sampled_from(
    [
        ("name", "x" * 31),
        ("name", "bad\x00name"),
        ("name", "\u202eevil"),
        ("name", "\u200b"),
        ("status", "y" * 140),
        ("status", "line\x07bell"),
        ("mobile_number", "12345"),
        ("mobile_number", "+1 415 555 2671 ext. 5"),
        ("email", "nope"),
        ("email", "a@b"),
        ("image", "ftp://example.com/a.png"),
        ("image", b"not an image"),
        ("image", 42),
    ]
)
_METADATA_VALUES = st.one_of(
    st.text(max_size=12), st.integers(-(2**40), 2**40), st.booleans(), st.floats(allow_nan=False, allow_infinity=False)
)
_VALID_METADATA = st.one_of(
    st.none(), st.dictionaries(st.sampled_from(["plan", "n", "beta", "Ünïcode"]), _METADATA_VALUES, max_size=3)
)
_METADATA = st.one_of(_VALID_METADATA, st.just({"": 1}), st.just({"rostra.sandbox": True}))
#: What users 0 and 1 store when an example starts with them as friends: every field, with the edges a transport
#: gets wrong most (spaces kept at both ends, XML metacharacters, emoji, a URL query), read back and pushed.
_STARTING_PROFILES = (
    {
        "name": " Ann <&> ",
        "status": " 👍🏽 'quoted' & \"double\" ",
        "mobile_number": "+44 20 7946 0958",
        "email": "o'brien+chat@example.org",
        "image": "http://example.com/p?q=1&r=<2>",
    },
    {"name": "Zoë 🎉", "status": "]]> &amp; <b>", "mobile_number": "+14155552671", "email": "Ann@EXAMPLE.com"},
)
#: The password of the wrong logins (no error text may show it, nor a user's real one).
_WRONG_PASSWORD = "not-the-password-0f9a"  # noqa: S105 - a wrong password, on purpose
#: What the Client logs when a transport session's close() raised (see rostra._client._close_quietly).
_CLOSE_RAISED = "A transport session raised while closing"
_USER = st.integers(0, USERS - 1)
#: Whom an operation is about: one of the users, or a JID that is unknown, malformed, or on another server.
_SUBJECT = st.one_of(_USER, _USER, _USER, st.sampled_from(["unknown", "malformed", "foreign"]))


# -- one user's Client on one side -------------------------------------------------------------------------------


class _Side:
    """A Client and everything it reported through its listeners."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.password: str | None = None  # what register() returned on this side
        self.connection: list[dict[str, Any]] = []
        self.profiles: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.contacts: dict[str, dict[str, Any]] = {}  # the last contact event per contact

    def listen(self) -> None:
        self.client.add_connection_listener(self._on_connection)
        self.client.add_user_profile_listener(self._on_profile)
        self.client.add_contact_request_listener(self._on_request)
        self.client.add_contact_listener(self._on_contact)

    def _on_connection(self, event: ConnectionEvent) -> None:
        self.connection.append(event.to_dict())

    def _on_profile(self, event: ProfileEvent) -> None:
        self.profiles.append(event.to_dict())

    def _on_request(self, event: ContactRequestEvent) -> None:
        self.requests.append(event.to_dict())  # returns None: the request stays open for accept/decline steps

    def _on_contact(self, event: ContactEvent) -> None:
        self.contacts[event.data.user_jid] = event.to_dict()

    def online(self) -> list[str]:
        """The contacts whose presence we receive (``to``/``both``) that this Client believes online: what makes
        their last seen 0. (For others the server answers first, so what the Client believes is not seen.)"""
        receiving = {jid for jid, event in self.contacts.items() if event["data"]["subscription"] in ("to", "both")}
        online = self.client._online  # the kit belongs to the core: it may look inside the Client
        return sorted(jid for jid, up in online.items() if up and jid in receiving)


_Call = Callable[[_Side], Awaitable[Response]]
_Outcome = tuple[Any, ...]


async def _outcome(call: _Call, side: _Side) -> _Outcome:
    try:
        response = await call(side)
    except RostraError as exc:
        for secret in (side.password, _WRONG_PASSWORD):
            if secret and (secret in exc.message or secret in str(exc) or secret in repr(exc)):
                text = exc.message.replace(secret, "<the password>")
                raise AssertionError(f"a {type(exc).__name__} ({exc.status_code}) shows a password: {text!r}") from None
        return ("error", exc.status_code, type(exc).__name__)
    return ("ok", _normalized(response.to_dict()))


def _normalized(response: dict[str, Any]) -> dict[str, Any]:
    data = response.get("data")
    if isinstance(data, dict) and isinstance(data.get("password"), str):
        data["password"] = "<a password>" if data["password"] else ""
    if isinstance(data, dict) and isinstance(data.get("seconds"), int):
        data["seconds"] = "0" if data["seconds"] == 0 else "more than 0"
    if isinstance(data, list):
        response["data"] = sorted(data, key=lambda contact: str(contact.get("userJid")))
    return response


def _difference(real: object, model: object, path: str = "") -> str | None:
    """Where ``real`` first differs from ``model`` (a dotted path), or None if they are equal."""
    if isinstance(real, dict) and isinstance(model, dict):
        for key in sorted(set(real) | set(model), key=str):
            found = _difference(real.get(key, "<missing>"), model.get(key, "<missing>"), f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(real, list | tuple) and isinstance(model, list | tuple) and len(real) == len(model):
        for index, (one, other) in enumerate(zip(real, model, strict=True)):
            found = _difference(one, other, f"{path}[{index}]")
            if found:
                return found
        return None
    if real == model:
        return None
    return f"at {path.lstrip('.') or 'the top'}: {real!r} (model: {model!r})"


# -- the state machine --------------------------------------------------------------------------------------------


class _ModelCheck(RuleBasedStateMachine):
    """One example: USERS users, each with a Client on the transport under test and one on the model."""

    target: ClassVar[Target]

    def __init__(self) -> None:
        super().__init__()
        self._stack = ExitStack()
        self.portal: BlockingPortal = self._stack.enter_context(start_blocking_portal(self.target.backend))
        run = secrets.token_hex(4)
        self.real = [self._open(self.target.client()) for _ in range(USERS)]
        self.domain = self.real[0].client.domain
        self.model = [self._open(Client(f"memory://rostra-kit-{run}", domain=self.domain)) for _ in range(USERS)]
        self.identifiers = [f"kit{run}u{index}" for index in range(USERS)]
        self.session_ended = [0.0] * USERS  # when each user's last session on the server ended (monotonic)
        self.failed = False  # a step's check failed: teardown then only closes

    def _open(self, client: Client) -> _Side:
        self._stack.enter_context(self.portal.wrap_async_context_manager(client))
        side = _Side(client)
        self.portal.call(side.listen)
        return side

    def teardown(self) -> None:
        try:
            if not self.failed:
                self.portal.call(anyio.sleep, _FINAL_GRACE)
                self._check_settled("the end of the example")
        finally:
            self._stack.close()

    # -- helpers ---------------------------------------------------------------------------------------------

    def _jid(self, subject: int | str) -> str:
        if isinstance(subject, int):
            return f"{self.identifiers[subject]}@{self.domain}"
        return {
            "unknown": f"{self.identifiers[0]}nobody@{self.domain}",
            "malformed": "not a jid",
            "foreign": "someone@elsewhere.example",
        }[subject]

    def _step(self, label: str, user: int, call: _Call) -> None:
        """Run ``call`` on the model, then on the transport, and compare the outcomes and what follows them."""
        label = f"{label} by user {user}"
        model = self.portal.call(_outcome, call, self.model[user])
        real = self.portal.call(_outcome, call, self.real[user])
        found = _difference(real, model)
        self.failed = found is not None
        assert found is None, f"{label}: the transport's answer differs from the model's {found}"
        self._check_settled(label)

    def _check_settled(self, label: str) -> None:
        found = self.portal.call(self._settle)
        self.failed = found is not None
        assert found is None, f"after {label}: the transport's events differ from the model's: {found}"

    async def _settle(self) -> str | None:
        deadline = anyio.current_time() + self.target.settle_timeout
        while True:
            found, hopeless = self._observations_differ()
            if found is None or hopeless or anyio.current_time() >= deadline:
                return found
            await anyio.sleep(0.005)

    def _observations_differ(self) -> tuple[str | None, bool]:
        """The first difference between the sides' observations, and whether waiting longer cannot mend it."""
        for user, (real, model) in enumerate(zip(self.real, self.model, strict=True)):
            for kind in ("connection", "profiles", "requests"):
                got, want = getattr(real, kind), getattr(model, kind)
                if got != want:
                    hopeless = len(got) >= len(want) or got != want[: len(got)]
                    return f"user {user}'s {kind} events: {got!r} (model: {want!r})", hopeless
            if real.contacts != model.contacts:
                return f"user {user}'s last contact events: {real.contacts!r} (model: {model.contacts!r})", False
            if real.online() != model.online():
                return f"user {user}'s contacts online: {real.online()!r} (model: {model.online()!r})", False
        return None, False

    def _wait_for_last_seen(self, subject: int | str) -> None:
        """A user offline less than a second answers "0" or "1" depending on the server's clock: wait it out."""
        if isinstance(subject, int) and self.model[subject].client.state is not State.CONNECTED:
            remaining = self.session_ended[subject] + _LAST_SEEN_WAIT - time.monotonic()
            if remaining > 0:
                time.sleep(remaining)

    # -- the operations --------------------------------------------------------------------------------------

    # Valid metadata only: a refused registration would leave every user without an account for the whole example
    # (the register rule tries invalid metadata).
    @initialize(offline=st.sets(_USER, max_size=1), metadata=_VALID_METADATA, strangers=st.booleans())
    def start(self, offline: set[int], metadata: dict[str, Any] | None, strangers: bool) -> None:
        """Every example starts with the users registered and connected (but those in ``offline``), and users 0
        and 1 friends unless ``strangers``, so that its steps are spent on profiles, pushed events and contacts,
        not on getting there (hypothesis favours simple data: False, the empty set)."""
        for user in range(USERS):
            self._register(user, valid=True, metadata=metadata)
            if user not in offline:
                self._connect(user, login="right")
        if not strangers and not offline & {0, 1}:
            self._contact_step("add_contact", 0, 1)
            self._contact_step("accept_contact", 1, 0)
            for user, changes in enumerate(_STARTING_PROFILES):  # a pushed profile event each way, every field
                self.set_user_profile(user, changes)

    @rule(user=_USER, valid=st.booleans(), metadata=_METADATA)
    def register(self, user: int, valid: bool, metadata: dict[str, Any] | None) -> None:
        self._register(user, valid=valid, metadata=metadata)

    @rule(user=_USER, login=st.sampled_from(["right", "wrong", "stranger"]))
    def connect(self, user: int, login: str) -> None:
        """Connect with the right password, a wrong one, or as a user who has no account."""
        self._connect(user, login=login)

    def _register(self, user: int, *, valid: bool, metadata: dict[str, Any] | None) -> None:
        identifier = self.identifiers[user] if valid else f"not valid {user}!"

        async def call(side: _Side) -> Response:
            response = await side.client.register(identifier, metadata)
            side.password = response.data.password
            return response

        self._step(f"register({identifier!r}, {metadata!r})", user, call)
        self.session_ended[user] = time.monotonic()  # registering logs in and out

    def _connect(self, user: int, *, login: str) -> None:
        username = self.identifiers[user] + ("stranger" if login == "stranger" else "")

        async def call(side: _Side) -> Response:
            given = side.password if login == "right" and side.password else _WRONG_PASSWORD
            return await side.client.connect(username, given)

        self._step(f"connect(<{login} login>)", user, call)

    @rule(user=_USER)
    def logout(self, user: int) -> None:
        was_connected = self.model[user].client.state is State.CONNECTED
        self._step("logout()", user, lambda side: side.client.logout())
        if was_connected:
            self.session_ended[user] = time.monotonic()

    @rule(user=_USER, subject=_SUBJECT)
    def get_user_profile(self, user: int, subject: int | str) -> None:
        jid = self._jid(subject)
        self._step(f"get_user_profile({jid!r})", user, lambda side: side.client.get_user_profile(jid))

    @rule(user=_USER, changes=_PROFILE_CHANGES)
    def set_user_profile(self, user: int, changes: dict[str, Any]) -> None:
        self._step(f"set_user_profile(**{changes!r})", user, lambda side: side.client.set_user_profile(**changes))
        # Every stored profile is read back at once, by its author and by the next user (401 if not connected).
        jid = self._jid(user)
        for reader in (user, (user + 1) % USERS):
            self._step(f"get_user_profile({jid!r})", reader, lambda side: side.client.get_user_profile(jid))

    @rule(user=st.sampled_from([0, 1]), changes=_PROFILE_CHANGES)
    def friend_sets_user_profile(self, user: int, changes: dict[str, Any]) -> None:
        """A user of the pair that starts as friends changes the profile: the other is told (pushed events)."""
        self.set_user_profile(user, changes)

    @rule(user=_USER, changes=_PROFILE_CHANGES, invalid=_INVALID_CHANGE)
    def set_user_profile_invalid(self, user: int, changes: dict[str, Any], invalid: tuple[str, object]) -> None:
        changes = {**changes, invalid[0]: invalid[1]}
        self._step(f"set_user_profile(**{changes!r})", user, lambda side: side.client.set_user_profile(**changes))

    @rule(user=_USER, subject=_SUBJECT)
    def get_last_seen(self, user: int, subject: int | str) -> None:
        jid = self._jid(subject)
        call: _Call = lambda side: side.client.get_last_seen(jid)  # noqa: E731 - asked twice of the model
        if self.portal.call(_outcome, call, self.model[user])[0] == "ok":  # a refusal needs no wait: asked at once
            self._wait_for_last_seen(subject)
        self._step(f"get_last_seen({jid!r})", user, call)

    @rule(user=_USER)
    def get_current_user_jid(self, user: int) -> None:
        self._step("get_current_user_jid()", user, lambda side: side.client.get_current_user_jid())

    @rule(user=_USER)
    def get_metadata(self, user: int) -> None:
        self._step("get_metadata()", user, lambda side: side.client.get_metadata())

    @rule(user=_USER, subject=_SUBJECT)
    def add_contact(self, user: int, subject: int | str) -> None:
        self._contact_step("add_contact", user, subject)

    @rule(user=_USER, subject=_SUBJECT)
    def accept_contact(self, user: int, subject: int | str) -> None:
        self._contact_step("accept_contact", user, subject)

    @rule(user=_USER, subject=_SUBJECT)
    def decline_contact(self, user: int, subject: int | str) -> None:
        self._contact_step("decline_contact", user, subject)

    @rule(user=_USER, subject=_SUBJECT)
    def remove_contact(self, user: int, subject: int | str) -> None:
        self._contact_step("remove_contact", user, subject)

    def _contact_step(self, method: str, user: int, subject: int | str) -> None:
        jid = self._jid(subject)

        async def call(side: _Side) -> Response:
            response: Response = await getattr(side.client, method)(jid)
            return response

        self._step(f"{method}({jid!r})", user, call)

    @rule(user=_USER)
    def get_contacts(self, user: int) -> None:
        self._step("get_contacts()", user, lambda side: side.client.get_contacts())


def check_model(target: Target, settings: Settings) -> int:
    """Run the model check on ``target`` with hypothesis ``settings``; a difference raises AssertionError.

    Returns how many examples ran.
    """
    ran = 0

    class ModelCheck(_ModelCheck):
        def teardown(self) -> None:
            nonlocal ran
            ran += 1
            super().teardown()

    ModelCheck.target = target
    closing = _CloseFailures()
    logging.getLogger("rostra").addHandler(closing)
    try:
        run_state_machine_as_test(ModelCheck, settings=settings)
    finally:
        logging.getLogger("rostra").removeHandler(closing)
    if closing.failures:  # the Client hides them from the app (and logs them): the rule is that close never raises
        raise AssertionError(f"the transport's close() raised {len(closing.failures)} time(s): {closing.failures[0]}")
    return ran


class _CloseFailures(logging.Handler):
    """Keeps the exceptions a transport session raised from close() (which the Client logs and swallows)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.failures: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == _CLOSE_RAISED and record.exc_info and record.exc_info[1] is not None:
            self.failures.append(f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}")
