"""Load: many concurrent Rostra SDK sessions in ONE process against a Prosody of our own, for a bounded time.

Each session is a ``rostra.Client`` of its own (``async with``): it registers a fresh identifier, connects, waits
until every session is connected, becomes friends with its two ring neighbours (so it reads the next one's whole
profile, and each change of a neighbour's profile reaches it as an event, as in a chat app), waits until every
session is, then, until the window closes, loops over three operations and checks every answer's exact value (a
wrong value is an error, like an exception):

- ``set_profile``: a partial ``set_user_profile`` (one or two fields, values that embed the session and a counter);
  the answer must be the whole profile this session expects after the change;
- ``get_own_profile``: ``get_user_profile`` of its own JID: the same expected profile;
- ``get_other_profile``: ``get_user_profile`` of the next session's user, who is updating at the same time: the
  answer must be one of that user's profiles between the last change it had completed when the read started and
  the last one it had begun when the read ended.

Registrations, logins and contact requests are staggered (at most ``--setup-concurrency`` at a time): Prosody
accepted a burst of 500 at once, but on two vCPUs the client's TLS handshakes and SCRAM then took a login on
xmpp:// up to 9.6 s (p99) against the 10 s connect timeout. The soft open-file limit is raised to the hard
one before Prosody starts (Prosody inherits it). Prosody runs with its Lua GC in generational mode.

Prints, per transport: sessions, operations, ops/s, p50 and p99 latency (ms) per operation kind (and per setup
step), resident memory per session (VmRSS once all sessions are connected and befriended, minus VmRSS before any,
divided by the sessions), and errors (count and the first messages); then one JSON line. Exits 1 on any error.

    python bench/load.py [--sessions 500] [--duration 25] [--transport ws|xmpp|both]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

import rostra

OPERATIONS = ("set_profile", "get_own_profile", "get_other_profile")
SETUP_STEPS = ("register", "connect", "add_contact", "get_contacts")
BEFRIEND_TIMEOUT = 60.0
MAX_ERROR_MESSAGES = 5
_EMPTY = {"nickName": "", "image": "", "thumbImage": "", "status": "", "mobileNumber": "", "email": ""}


def raise_open_file_limit() -> tuple[int, int]:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit; return the (soft, hard) limits now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def resident_kib() -> int:
    """This process's resident set size (VmRSS in /proc/self/status), in KiB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS line in /proc/self/status")


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q`` quantile of ``values`` (0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def profile_change(index: int, seq: int) -> dict[str, Any]:
    """The ``seq``-th partial update of session ``index``: set_user_profile keywords, values unique to both."""
    match seq % 4:
        case 0:
            return {"name": f"Load {index} n{seq}", "status": f"load {index}/{seq} <&> ✓"}
        case 1:
            return {"status": f"busy {index}·{seq} 🚀"}
        case 2:
            return {"mobile_number": f"+1415{5_000_000 + (index * 7919 + seq) % 5_000_000:07d}"}
        case _:
            return {"name": f"L{index}·{seq}", "email": f"u{index}.{seq}@example.com"}


_API_NAMES = {"name": "nickName", "status": "status", "mobile_number": "mobileNumber", "email": "email"}


@dataclass
class _User:
    """One session's account and the profiles it has stored, in order (version 0 is the empty profile)."""

    index: int
    jid: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)
    committed: int = 0  # the last version whose set_user_profile returned
    started: int = 0  # the last version whose set_user_profile was begun
    uncertain: bool = False  # a set_user_profile failed: what the server holds is not known any more

    def profile(self, version: int) -> dict[str, Any]:
        return self.history[version]


@dataclass
class LoadResult:
    """What one load run measured."""

    url: str
    sessions: int
    connected: int = 0
    duration_s: float = 0.0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OPERATIONS, 0))
    latencies: dict[str, list[float]] = field(
        default_factory=lambda: {kind: [] for kind in (*OPERATIONS, *SETUP_STEPS)}
    )
    rss_before_kib: int = 0
    rss_connected_kib: int = 0
    errors: int = 0
    error_messages: list[str] = field(default_factory=list)

    @property
    def operations(self) -> int:
        return sum(self.counts.values())

    def error(self, message: str) -> None:
        self.errors += 1
        if len(self.error_messages) < MAX_ERROR_MESSAGES:
            self.error_messages.append(message)

    def summary(self) -> dict[str, Any]:
        """The figures, as JSON-ready builtins (latencies in ms, memory in KiB)."""
        per_kind = {
            kind: {
                "count": len(values),
                "p50_ms": round(percentile(values, 0.50) * 1e3, 2),
                "p99_ms": round(percentile(values, 0.99) * 1e3, 2),
            }
            for kind, values in self.latencies.items()
        }
        return {
            "url": self.url,
            "sessions": self.sessions,
            "connected": self.connected,
            "duration_s": round(self.duration_s, 2),
            "operations": self.operations,
            "ops_per_s": round(self.operations / self.duration_s, 1) if self.duration_s else 0.0,
            "latency": per_kind,
            "rss_before_kib": self.rss_before_kib,
            "rss_connected_kib": self.rss_connected_kib,
            "rss_per_session_kib": round((self.rss_connected_kib - self.rss_before_kib) / self.sessions, 1),
            "errors": self.errors,
            "error_messages": self.error_messages,
        }


class _Barrier:
    """Opens once every session has arrived (set up or failed); ``on_open`` runs once, just before."""

    def __init__(self, parties: int, on_open: Callable[[], None] = lambda: None) -> None:
        self._missing = parties
        self._on_open = on_open
        self._open = anyio.Event()

    def arrive(self) -> None:
        self._missing -= 1
        if self._missing == 0:
            self._on_open()
            self._open.set()

    async def wait(self) -> None:
        await self._open.wait()


class _Run:
    """The shared state of one load run: the users, the setup barriers, the window, the result."""

    def __init__(self, url: str, *, sessions: int, duration: float, setup_concurrency: int) -> None:
        self.result = LoadResult(url=url, sessions=sessions)
        self.users = [_User(index) for index in range(sessions)]
        self.duration = duration
        self.setup_slots = anyio.Semaphore(setup_concurrency)
        self.connected = _Barrier(sessions)
        self.befriended = _Barrier(sessions, self._open_window)
        self.start = 0.0
        self.deadline = 0.0
        self.last_end = 0.0
        self.tag = uuid.uuid4().hex[:8]

    def _open_window(self) -> None:
        self.result.rss_connected_kib = resident_kib()
        self.start = time.monotonic()
        self.deadline = self.start + self.duration

    def neighbours(self, user: _User) -> list[_User]:
        """The previous and the next session in the ring whose users exist (not ``user``, each once)."""
        count = len(self.users)
        indices = dict.fromkeys([(user.index - 1) % count, (user.index + 1) % count])
        return [self.users[index] for index in indices if index != user.index and self.users[index].jid]


def _expected(user: _User, version: int) -> dict[str, Any]:
    return {"statusCode": 200, "message": "Success", "data": user.profile(version)}


def _describe(error: BaseException) -> str:
    code = getattr(error, "status_code", None)
    return f"{type(error).__name__}{f' ({code})' if code is not None else ''}: {error}"


async def _timed(run: _Run, kind: str, call: Callable[[], Awaitable[Any]], label: str) -> Any:
    """Await ``call()``, record its latency under ``kind``; on failure record the error and return None."""
    begin = time.monotonic()
    try:
        answer = await call()
    except Exception as error:  # every failure counts, whatever its type
        run.result.error(f"session {label} {kind}: {_describe(error)}")
        return None
    run.result.latencies[kind].append(time.monotonic() - begin)
    return answer


async def _set_up(run: _Run, sdk: rostra.Client, user: _User) -> bool:
    """Register a fresh user and connect; True when both succeeded."""
    label = str(user.index)
    async with run.setup_slots:
        registered = await _timed(run, "register", lambda: sdk.register(f"load{run.tag}n{user.index}"), label)
        if registered is None:
            return False
        data = registered.data
        if await _timed(run, "connect", lambda: sdk.connect(data.username, data.password), label) is None:
            return False
    user.jid = data.user_jid
    flags = {"isAdminBlocked": False, "shareContactDetails": False}
    user.history = [{"userJid": user.jid, "userId": user.jid.partition("@")[0], **_EMPTY, **flags}]
    run.result.connected += 1
    return True


class _Friends:
    """The JIDs a contact listener has seen become friends, and a wait for a set of them."""

    def __init__(self) -> None:
        self.jids: set[str] = set()
        self._changed = anyio.Event()

    def on_contact(self, event: rostra.ContactEvent) -> None:
        if event.data.is_friend:
            self.jids.add(event.data.user_jid)
            self._changed.set()

    async def wait_for(self, wanted: set[str]) -> None:
        while not wanted <= self.jids:
            self._changed = anyio.Event()
            await self._changed.wait()


async def _befriend(run: _Run, sdk: rostra.Client, user: _User, friends: _Friends) -> bool:
    """Add both ring neighbours (the requests cross, so each side accepts the other's); True once all are friends.

    Friends see each other's whole profile (non-contacts may be shown less of it), and each profile change reaches
    them as an event, as in a chat app.
    """
    label = str(user.index)
    wanted = {peer.jid for peer in run.neighbours(user)}
    async with run.setup_slots:
        for jid in sorted(wanted):
            if await _timed(run, "add_contact", functools.partial(sdk.add_contact, jid), label) is None:
                return False
    with anyio.move_on_after(BEFRIEND_TIMEOUT):
        await friends.wait_for(wanted)
    contacts = await _timed(run, "get_contacts", sdk.get_contacts, label)
    if contacts is None:
        return False
    mutual = {contact.user_jid for contact in contacts.data if contact.is_friend}
    if mutual != wanted:
        run.result.error(
            f"session {label}: friends {sorted(mutual)} after {BEFRIEND_TIMEOUT:g} s, not {sorted(wanted)}"
        )
        return False
    return True


def _compact(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _check(run: _Run, label: str, kind: str, answer: Any, allowed: list[dict[str, Any]]) -> None:
    got = answer.to_dict()
    if got not in allowed:
        run.result.error(
            f"session {label} {kind}: got {_compact(got['data'])}, expected {_compact(allowed[-1]['data'])}"
        )


async def _set_profile(run: _Run, sdk: rostra.Client, user: _User, seq: int) -> None:
    change = profile_change(user.index, seq)
    wanted = dict(user.profile(user.committed))
    wanted.update({_API_NAMES[key]: value for key, value in change.items()})
    user.history.append(wanted)
    user.started = len(user.history) - 1
    answer = await _timed(run, "set_profile", lambda: sdk.set_user_profile(**change), str(user.index))
    if answer is None:
        user.uncertain = True
        return
    run.result.counts["set_profile"] += 1
    user.committed = user.started
    if not user.uncertain:
        _check(run, str(user.index), "set_profile", answer, [_expected(user, user.committed)])


async def _get_profile(run: _Run, sdk: rostra.Client, reader: _User, target: _User, kind: str) -> None:
    low = target.committed
    answer = await _timed(run, kind, lambda: sdk.get_user_profile(target.jid), str(reader.index))
    if answer is None:
        return
    run.result.counts[kind] += 1
    if target.uncertain:
        return
    allowed = [_expected(target, version) for version in range(low, target.started + 1)]
    _check(run, str(reader.index), kind, answer, allowed)


async def _session(run: _Run, user: _User, options: dict[str, Any]) -> None:
    ready = False
    friends = _Friends()
    try:
        async with rostra.Client(run.result.url, **options) as sdk:
            sdk.add_contact_listener(friends.on_contact)
            try:
                ready = await _set_up(run, sdk, user)
            finally:
                run.connected.arrive()
            await run.connected.wait()
            try:
                ready = ready and await _befriend(run, sdk, user, friends)
            finally:
                run.befriended.arrive()
            await run.befriended.wait()
            following = run.users[(user.index + 1) % len(run.users)]
            peer = following if following is not user and following.jid else None
            seq = 0
            while ready and time.monotonic() < run.deadline:
                await _set_profile(run, sdk, user, seq)
                seq += 1
                if time.monotonic() < run.deadline:
                    await _get_profile(run, sdk, user, user, "get_own_profile")
                if peer is not None and time.monotonic() < run.deadline:
                    await _get_profile(run, sdk, user, peer, "get_other_profile")
            run.last_end = max(run.last_end, time.monotonic())
    except Exception as error:  # the Client itself failed (construction, close): still one error, never a crash
        run.result.error(f"session {user.index}: {_describe(error)}")


async def run_load(
    url: str,
    *,
    ca_file: str | None,
    sessions: int,
    duration: float,
    setup_concurrency: int = 25,
    request_timeout: float = 10.0,
    connect_timeout: float = 10.0,
) -> LoadResult:
    """Run ``sessions`` concurrent SDK sessions against ``url`` for ``duration`` seconds; return what was measured.

    Works on any anyio backend the transport supports (ws:// on asyncio and trio, xmpp:// on asyncio).
    """
    if sessions < 1 or duration <= 0 or setup_concurrency < 1:
        raise ValueError("sessions and setup_concurrency must be >= 1 and duration > 0")
    run = _Run(url, sessions=sessions, duration=duration, setup_concurrency=setup_concurrency)
    options: dict[str, Any] = {
        "ca_file": ca_file,
        "request_timeout": request_timeout,
        "connect_timeout": connect_timeout,
    }
    run.result.rss_before_kib = resident_kib()
    async with anyio.create_task_group() as group:
        for user in run.users:
            group.start_soon(_session, run, user, options)
    run.result.duration_s = max(0.0, run.last_end - run.start)
    return run.result


def report(name: str, summary: dict[str, Any]) -> str:
    """The human-readable lines of one run."""
    lines = [
        f"{name}: {summary['sessions']} sessions ({summary['connected']} connected), "
        f"{summary['operations']} operations in {summary['duration_s']:.1f} s = {summary['ops_per_s']:.0f} ops/s",
    ]
    for kind, row in summary["latency"].items():
        lines.append(f"  {kind:18} {row['count']:7d}  p50 {row['p50_ms']:8.2f} ms  p99 {row['p99_ms']:8.2f} ms")
    lines.append(
        f"  memory: {summary['rss_per_session_kib']:.0f} KiB per session "
        f"(VmRSS {summary['rss_before_kib']} KiB before, {summary['rss_connected_kib']} KiB with all connected)"
    )
    lines.append(f"  errors: {summary['errors']}")
    lines.extend(f"    {message}" for message in summary["error_messages"])
    return "\n".join(lines)


def _one_transport(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Start a Prosody of our own, run the load on transport ``name`` against it, print and return the summary."""
    from rostra_xmpp._prosody import ProsodyServer  # only the command needs the launcher

    with ProsodyServer(upload=False) as server:
        url = server.ws_url if name == "ws" else server.xmpp_url
        print(f"{name}: {args.sessions} sessions against {url} for {args.duration:g} s ...", flush=True)
        load = functools.partial(
            run_load,
            url,
            ca_file=str(server.ca_file),
            sessions=args.sessions,
            duration=args.duration,
            setup_concurrency=args.setup_concurrency,
            request_timeout=args.request_timeout,
            connect_timeout=args.connect_timeout,
        )
        summary = anyio.run(load).summary()
    print(report(name, summary), flush=True)
    return summary


def _in_child(name: str) -> dict[str, Any]:
    """Run this script for transport ``name`` in a process of its own (so each memory figure starts clean)."""
    command = [sys.executable, __file__, "--transport", name, *_passed_on(sys.argv[1:])]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None
        last = ""
        for line in child.stdout:
            if line.startswith("{"):
                last = line
            else:
                print(line, end="", flush=True)
    if child.returncode not in (0, 1) or not last:
        message = f"the {name} run exited with status {child.returncode} without its figures"
        return {"sessions": 0, "errors": 1, "error_messages": [message]}
    summary: dict[str, Any] = json.loads(last)["load"][name]
    return summary


def _passed_on(argv: list[str]) -> list[str]:
    """``argv`` without its --transport option (the parent picks each child's)."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--transport":
            skip = True
        elif not arg.startswith("--transport="):
            kept.append(arg)
    return kept


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--duration", type=float, default=25.0, help="seconds of the measured window, per transport")
    parser.add_argument(
        "--transport",
        choices=("ws", "xmpp", "both"),
        default="both",
        help="both: ws, then xmpp, each in its own process",
    )
    parser.add_argument("--setup-concurrency", type=int, default=25, help="registrations and logins at a time")
    parser.add_argument("--request-timeout", type=float, default=10.0, help="the Client's request_timeout (s)")
    parser.add_argument("--connect-timeout", type=float, default=10.0, help="the Client's connect_timeout (s)")
    args = parser.parse_args()

    soft, hard = raise_open_file_limit()  # before Prosody starts: it inherits the limit
    if args.transport == "both":
        summaries = {name: _in_child(name) for name in ("ws", "xmpp")}
    else:
        print(f"open-file limit: {soft} (hard {hard})", flush=True)
        summaries = {args.transport: _one_transport(args.transport, args)}
    errors = sum(summary["errors"] for summary in summaries.values())
    print(json.dumps({"load": summaries, "errors": errors}))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
