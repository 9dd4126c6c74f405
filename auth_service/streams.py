"""What an anonymous caller of the revocation feed may cost the issuer.

`StreamSlots` caps open push streams, in all and per client address: each holds a
connection and a descriptor for as long as the client likes; without a cap one client could
hold enough of them to leave `/token` and `/healthz` unanswerable. `PullBudget` bounds the
pull pages rendered per address and minute (cached pages are free): a 10,000-entry page
costs the issuer about 190 ms of CPU.
"""

from __future__ import annotations

import math
import time
from collections import Counter, OrderedDict
from collections.abc import Callable


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

    @property
    def open(self) -> int:
        """Streams open now, from every address."""
        return self._open.total()

    def give_back(self, address: str) -> None:
        self._open[address] -= 1
        if self._open[address] <= 0:
            del self._open[address]


class PullBudget:
    """Entries rendered per client address in a fixed minute; bounded memory."""

    _TRACKED = 100_000
    WINDOW = 60.0

    def __init__(self, entries_per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._budget = entries_per_minute
        self._clock = clock
        self._spent: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def spend(self, address: str, entries: int) -> bool:
        """Take `entries` from the address's budget; False (nothing taken) if it has not that many."""
        now = self._clock()
        start, spent = self._spent.get(address, (now, 0))
        if now - start >= self.WINDOW:
            start, spent = now, 0
        if spent + entries > self._budget:
            return False
        self._spent[address] = (start, spent + entries)
        self._spent.move_to_end(address)
        if len(self._spent) > self._TRACKED:
            self._spent.popitem(last=False)
        return True

    def retry_after(self, address: str) -> int:
        start, _ = self._spent.get(address, (self._clock(), 0))
        return max(1, math.ceil(start + self.WINDOW - self._clock()))
