"""A cap on open revocation push streams, in all and per client address.

Each stream holds a connection and a descriptor for as long as the client likes; without a
cap one client could hold enough of them to leave `/token` and `/healthz` unanswerable.
"""

from __future__ import annotations

from collections import Counter


class StreamSlots:
    def __init__(self, total: int, per_address: int) -> None:
        self._total = total
        self._per_address = per_address
        self._open: Counter[str] = Counter()

    def take(self, address: str) -> bool:
        """A slot for one more stream from `address`, or False when either cap is reached."""
        if self._open.total() >= self._total or self._open[address] >= self._per_address:
            return False
        self._open[address] += 1
        return True

    def give_back(self, address: str) -> None:
        self._open[address] -= 1
        if self._open[address] <= 0:
            del self._open[address]
