"""get_user_profile latency: Rostra over xmpp:// against its floor, bare aioxmpp, measured in the same run.

The floor is the same PEP request (XEP-0163 items of node urn:xmpp:vcard4, max 1 item, to the same user) sent with
bare aioxmpp's own PubSubClient on a second connection of the same account. Both run against one Prosody that this
script starts (the project's config, Lua GC in generational mode so the server's GC pauses do not dominate the
tails), interleaved round by round so that the machine's drift hits both alike.

Prints, per variant: median and p99 latency (ms) and client CPU per request (us), then the ratios
Rostra / floor. Goal: median ratio <= 1.10.

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
from typing import Any

import aioxmpp
import aioxmpp.pubsub

import rostra
from rostra._transport import TransportOptions
from rostra_xmpp._boundary import TlsPolicy
from rostra_xmpp._prosody import ProsodyServer
from rostra_xmpp.transport import XmppTransport

NODE = "urn:xmpp:vcard4"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def _timed(call: Callable[[], Awaitable[Any]], count: int) -> tuple[list[float], float]:
    """Run ``call`` ``count`` times one after another: per-call latencies (s) and client CPU (s) for the batch."""
    latencies = []
    cpu_start = time.process_time()
    for _ in range(count):
        start = time.perf_counter()
        await call()
        latencies.append(time.perf_counter() - start)
    return latencies, time.process_time() - cpu_start


def _bare_client(server: ProsodyServer, username: str, password: str) -> aioxmpp.Client:
    """A plain aioxmpp client on the same account; Rostra's TLS policy only sets up its connection."""
    transport = XmppTransport(server.xmpp_url, TransportOptions(ca_file=str(server.ca_file)))
    policy = TlsPolicy(transport.domain, str(server.ca_file), True)
    jid = aioxmpp.JID(username, transport.domain, "bench-floor")
    return aioxmpp.Client(jid, policy.security_layer(password), override_peer=transport._peer(policy))


async def run(rounds: int, per_round: int) -> dict[str, Any]:
    with ProsodyServer(upload=False) as server:
        server_options = {"server": server.xmpp_url, "ca_file": str(server.ca_file)}
        suffix = uuid.uuid4().hex[:10]
        async with rostra.Client(**server_options) as alice_sdk, rostra.Client(**server_options) as bob_sdk:
            alice = (await alice_sdk.register(f"benchalice{suffix}")).data
            bob = (await bob_sdk.register(f"benchbob{suffix}")).data
            await alice_sdk.connect(alice.username, alice.password)
            await alice_sdk.set_user_profile(
                name="Alice Benchmark",
                status="Measuring the cost of a profile read " * 3,
                mobile_number="+14155552671",
                email="alice.benchmark@example.com",
                image="https://rostra.invalid/avatars/alice-benchmark.png",
            )
            await bob_sdk.connect(bob.username, bob.password)
            expected = (await bob_sdk.get_user_profile(alice.user_jid)).data
            assert expected.nick_name == "Alice Benchmark", expected

            bare = _bare_client(server, bob.username, bob.password)
            async with bare.connected():
                pubsub = bare.summon(aioxmpp.PubSubClient)
                alice_jid = aioxmpp.JID.fromstr(alice.user_jid)

                async def rostra_call() -> None:
                    await bob_sdk.get_user_profile(alice.user_jid)

                async def floor_call() -> None:
                    await pubsub.get_items(alice_jid, node=NODE, max_items=1)

                variants = {"rostra": rostra_call, "aioxmpp": floor_call}
                latencies: dict[str, list[float]] = {name: [] for name in variants}
                cpu: dict[str, float] = dict.fromkeys(variants, 0.0)
                for call in variants.values():  # warm-up
                    await _timed(call, per_round // 2)
                for index in range(rounds):
                    order = list(variants) if index % 2 == 0 else list(reversed(variants))
                    for name in order:
                        batch, spent = await _timed(variants[name], per_round)
                        latencies[name].extend(batch)
                        cpu[name] += spent
            await alice_sdk.logout()
            await bob_sdk.logout()

    total = rounds * per_round
    result: dict[str, Any] = {"requests_per_variant": total}
    for name, values in latencies.items():
        result[name] = {
            "median_ms": round(statistics.median(values) * 1e3, 4),
            "p99_ms": round(_percentile(values, 0.99) * 1e3, 4),
            "cpu_us_per_request": round(cpu[name] / total * 1e6, 1),
        }
    for key in ("median_ms", "p99_ms", "cpu_us_per_request"):
        result[f"ratio_{key}"] = round(result["rostra"][key] / result["aioxmpp"][key], 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=200)
    args = parser.parse_args()
    result = asyncio.run(run(args.rounds, args.per_round))
    print(json.dumps(result))
    print(
        f"get_user_profile over xmpp://, {result['requests_per_variant']} requests each, interleaved:\n"
        f"  rostra : median {result['rostra']['median_ms']:.3f} ms, p99 {result['rostra']['p99_ms']:.3f} ms, "
        f"client CPU {result['rostra']['cpu_us_per_request']:.0f} us/request\n"
        f"  aioxmpp: median {result['aioxmpp']['median_ms']:.3f} ms, p99 {result['aioxmpp']['p99_ms']:.3f} ms, "
        f"client CPU {result['aioxmpp']['cpu_us_per_request']:.0f} us/request (the floor)\n"
        f"  ratio rostra/aioxmpp: median {result['ratio_median_ms']:.3f}, p99 {result['ratio_p99_ms']:.3f}, "
        f"CPU {result['ratio_cpu_us_per_request']:.3f}  (goal: median <= 1.10)"
    )


if __name__ == "__main__":
    main()
