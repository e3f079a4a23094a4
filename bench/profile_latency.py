"""get_user_profile latency through Rostra, each transport next to its floor, measured in the same run.

Variants, all reading the same user's profile (one PEP items request of node urn:xmpp:vcard4, max 1 item):
- ``rostra-xmpp``: ``Client.get_user_profile`` over xmpp:// (aioxmpp underneath);
- ``aioxmpp``: its floor, bare aioxmpp's own ``PubSubClient.get_items`` on a second connection of the account;
- ``rostra-ws``: ``Client.get_user_profile`` over ws:// (wsproto underneath);
- ``wsproto``: its floor, the same IQ pre-serialized and sent over a bare wsproto connection (``_wsfloor.py``).

One Prosody that this script starts (the project's config, whose Lua GC runs in generational mode so the server's
GC pauses do not dominate the tails). The variants are interleaved round by round, in a rotating order, so the
machine's drift hits them alike; each figure is compared only with figures of the same run.

Prints, per variant, median and p99 latency (ms) and client CPU per request (us); then the ratios
rostra-xmpp/aioxmpp (goal: median <= 1.10), rostra-ws/wsproto (goal: median <= 1.25) and rostra-ws/rostra-xmpp.

    python bench/profile_latency.py [--rounds 10] [--per-round 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import urlsplit

import aioxmpp
import aioxmpp.pubsub

import rostra
from _wsfloor import BareWebSocketClient
from rostra._transport import TransportOptions
from rostra_xmpp._boundary import TlsPolicy
from rostra_xmpp._prosody import ProsodyServer
from rostra_xmpp.transport import XmppTransport

NODE = "urn:xmpp:vcard4"
RATIOS = {
    "rostra-xmpp/aioxmpp": ("rostra-xmpp", "aioxmpp", 1.10),
    "rostra-ws/wsproto": ("rostra-ws", "wsproto", 1.25),
    "rostra-ws/rostra-xmpp": ("rostra-ws", "rostra-xmpp", None),
}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def _timed(call: Callable[[], Awaitable[Any]], count: int) -> tuple[list[float], float]:
    """Run ``call`` ``count`` times one after another: per-call latencies (s) and client CPU (s) for the batch."""
    latencies = []
    cpu_start = time.process_time()
    for _ in range(count):
        start = time.perf_counter()
        await call()
        latencies.append(time.perf_counter() - start)
    return latencies, time.process_time() - cpu_start


def _bare_aioxmpp(server: ProsodyServer, username: str, password: str) -> aioxmpp.Client:
    """A plain aioxmpp client on the same account; Rostra's TLS policy only sets up its connection."""
    transport = XmppTransport(server.xmpp_url, TransportOptions(ca_file=str(server.ca_file)))
    policy = TlsPolicy(transport.domain, str(server.ca_file), True)
    jid = aioxmpp.JID(username, transport.domain, "bench-floor")
    return aioxmpp.Client(jid, policy.security_layer(password), override_peer=transport._peer(policy))


async def _variants(stack: AsyncExitStack, server: ProsodyServer) -> dict[str, Callable[[], Awaitable[Any]]]:
    """Alice with a profile, and the four ways Bob reads it."""
    ca_file = str(server.ca_file)
    alice_sdk = await stack.enter_async_context(rostra.Client(server.xmpp_url, ca_file=ca_file))
    suffix = uuid.uuid4().hex[:10]
    alice = (await alice_sdk.register(f"benchalice{suffix}")).data
    bob = (await alice_sdk.register(f"benchbob{suffix}")).data
    await alice_sdk.connect(alice.username, alice.password)
    await alice_sdk.set_user_profile(
        name="Alice Benchmark",
        status="Measuring the cost of a profile read " * 3,
        mobile_number="+14155552671",
        email="alice.benchmark@example.com",
        image="https://rostra.invalid/avatars/alice-benchmark.png",
    )
    expected = (await alice_sdk.get_user_profile(alice.user_jid)).data

    bob_xmpp = await stack.enter_async_context(rostra.Client(server.xmpp_url, ca_file=ca_file))
    await bob_xmpp.connect(bob.username, bob.password)
    bob_ws = await stack.enter_async_context(rostra.Client(server.ws_url, ca_file=ca_file))
    await bob_ws.connect(bob.username, bob.password)
    for sdk in (bob_xmpp, bob_ws):
        assert (await sdk.get_user_profile(alice.user_jid)).data == expected

    bare = _bare_aioxmpp(server, bob.username, bob.password)
    await stack.enter_async_context(bare.connected())
    pubsub = bare.summon(aioxmpp.PubSubClient)
    alice_jid = aioxmpp.JID.fromstr(alice.user_jid)

    ws = urlsplit(server.ws_url)
    assert ws.hostname is not None
    assert ws.port is not None
    floor = await BareWebSocketClient.login(ws.hostname, ws.port, ws.path, "localhost", bob.username, bob.password)
    stack.push_async_callback(floor.aclose)
    template = floor.profile_request_template(alice.user_jid)
    assert "Alice Benchmark" in await floor.call(template)

    return {
        "rostra-xmpp": lambda: bob_xmpp.get_user_profile(alice.user_jid),
        "aioxmpp": lambda: pubsub.get_items(alice_jid, node=NODE, max_items=1),
        "rostra-ws": lambda: bob_ws.get_user_profile(alice.user_jid),
        "wsproto": lambda: floor.call(template),
    }


async def run(rounds: int, per_round: int) -> dict[str, Any]:
    with ProsodyServer(upload=False) as server:
        async with AsyncExitStack() as stack:
            variants = await _variants(stack, server)
            names = list(variants)
            latencies: dict[str, list[float]] = {name: [] for name in names}
            cpu = dict.fromkeys(names, 0.0)
            for call in variants.values():  # warm-up
                await _timed(call, per_round // 2)
            for index in range(rounds):
                for name in names[index % len(names) :] + names[: index % len(names)]:
                    batch, spent = await _timed(variants[name], per_round)
                    latencies[name].extend(batch)
                    cpu[name] += spent

    total = rounds * per_round
    result: dict[str, Any] = {"requests_per_variant": total}
    for name, values in latencies.items():
        result[name] = {
            "median_ms": round(statistics.median(values) * 1e3, 4),
            "p99_ms": round(_percentile(values, 0.99) * 1e3, 4),
            "cpu_us_per_request": round(cpu[name] / total * 1e6, 1),
        }
    result["ratios"] = {
        label: {key: round(result[a][key] / result[b][key], 3) for key in ("median_ms", "p99_ms", "cpu_us_per_request")}
        for label, (a, b, _goal) in RATIOS.items()
    }
    return result


def _report(result: dict[str, Any]) -> str:
    lines = [f"get_user_profile, {result['requests_per_variant']} requests per variant, interleaved:"]
    for name in ("rostra-xmpp", "aioxmpp", "rostra-ws", "wsproto"):
        row = result[name]
        lines.append(
            f"  {name:12} median {row['median_ms']:.3f} ms  p99 {row['p99_ms']:.3f} ms  "
            f"client CPU {row['cpu_us_per_request']:.0f} us/request"
        )
    for label, (_a, _b, goal) in RATIOS.items():
        ratio = result["ratios"][label]
        target = f"  (goal: median <= {goal:.2f})" if goal else ""
        lines.append(
            f"  ratio {label:22} median {ratio['median_ms']:.3f}  p99 {ratio['p99_ms']:.3f}  "
            f"CPU {ratio['cpu_us_per_request']:.3f}{target}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--per-round", type=int, default=200)
    args = parser.parse_args()
    result = asyncio.run(run(args.rounds, args.per_round))
    print(json.dumps(result))
    print(_report(result))


if __name__ == "__main__":
    main()
