"""Ports for test and bench servers: never one an outgoing connection can take first.

CI once failed with a bench replica dying on "address already in use": its port came from
`bind(0)`, i.e. from the kernel's ephemeral range, and a concurrent health check's outgoing
connection took it as its local port before the replica bound it.
"""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor

from auth_service.launch import _ephemeral_range, free_port, free_ports


def test_ports_come_from_below_the_ephemeral_range_so_outgoing_connections_cannot_take_them():
    low, _high = _ephemeral_range()
    ports = free_ports(50)
    assert all(10_000 <= p < low for p in ports), ports


def test_ports_handed_out_are_never_repeated_even_across_threads():
    with ThreadPoolExecutor(8) as pool:
        batches = list(pool.map(free_ports, [25] * 8))
    every = [p for batch in batches for p in batch] + [free_port() for _ in range(20)]
    assert len(every) == len(set(every)) == 220


def test_a_port_someone_listens_on_is_never_handed_out():
    low, _high = _ephemeral_range()
    listeners = []
    try:
        for port in range(10_000, low):  # occupy a run of the pool and check none of it comes back
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                sock.close()
                continue
            sock.listen()
            listeners.append(sock)
            if len(listeners) == 2_000:
                break
        taken = {s.getsockname()[1] for s in listeners}
        handed = free_ports(200)
        assert not taken & set(handed)
    finally:
        for sock in listeners:
            sock.close()
