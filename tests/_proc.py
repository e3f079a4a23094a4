"""What the launcher tests read from /proc: the listening sockets of a process.

The tests import it by name (``from _proc import listening_addresses``), like ``_prosody``.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def listening_addresses(pid: int) -> set[tuple[str, int]]:
    """The (address, port) pairs on which process ``pid`` has listening TCP sockets (IPv4 and IPv6)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:  # the descriptor was closed while we listed them
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    listening = set()
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            address_hex, port_hex = local.split(":")
            raw = bytes.fromhex(address_hex)
            # /proc/net prints the address as host-order 32-bit words.
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            listening.add((socket.inet_ntop(family, words), int(port_hex, 16)))
    return listening
