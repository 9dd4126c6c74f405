"""Capped exponential backoff with jitter, for every loop that retries the issuer."""

from __future__ import annotations

import random


class Backoff:
    """Delays that double from `initial` up to `cap`, each drawn from [d/2, d].

    The jitter keeps a fleet of replicas that lost the issuer at the same moment
    from reconnecting in lockstep when it comes back.
    """

    def __init__(self, initial: float = 0.5, cap: float = 30.0) -> None:
        self._initial = initial
        self._cap = cap
        self._attempt = 0

    def next(self) -> float:
        delay = min(self._cap, self._initial * 2**self._attempt)
        self._attempt = min(self._attempt + 1, 32)
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self._attempt = 0
