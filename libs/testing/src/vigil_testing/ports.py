"""A block of ports for `vigil up --base-port N` in a test."""

from __future__ import annotations

import random
from pathlib import Path

BLOCK = 22  # the ports `vigil up --base-port N` uses: N..N+21


def _ephemeral_low() -> int:
    """The first port the OS hands to outgoing connections (Linux: ip_local_port_range; 32768 elsewhere)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_base_port() -> int:
    """A base port N with N..N+21 all free, below the OS's ephemeral range.

    A block inside that range can be taken between this check and the services' binds: the stack's own
    clients (connecting to the broker it started first) get their local ports from it. Below it, only
    listeners take ports.
    """
    from vigil_cli.up import port_available

    low = _ephemeral_low()
    for _ in range(200):
        base = random.randrange(10_000, low - BLOCK)
        if all(port_available(base + i) for i in range(BLOCK)):
            return base
    raise RuntimeError(f"no free block of {BLOCK} ports on 127.0.0.1 below {low}")
