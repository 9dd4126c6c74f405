"""The issuer's one source of time, injected so that tests set it instead of sleeping.

`create_app(settings, clock=...)` hands the same clock to every collaborator: grants,
client authentication, the rate limiter's calls, the revoker and the token minter.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]  # seconds since the epoch, as time.time()


def system_clock() -> float:
    return time.time()


__all__ = ["Clock", "system_clock"]
