"""Login and client-secret rate limiting, reserved before any hashing.

Three windows, none of which lets a stranger lock a victim out:

- failures per (subject, address): the short lockout, `max_failures` in the window. A
  stranger's guesses lock only the stranger's own address out of that account.
- attempts per address, across subjects: one address cannot spray many accounts.
- failures per subject from every address, up to a `ceiling` (NIST SP 800-63B allows 100):
  past it the account is throttled, not refused: each address gets one guess per window,
  so the right password from an address with no recent failure still gets in.

An attempt is *reserved* before the hash, in one step with the check (no await between
them in memory, one Lua call in Redis), and counted as a failure until it is settled: forty
parallel wrong guesses against a limit of five get five hashes, not forty.

Client secrets use the first two windows only, counting failures; a correct secret is never
refused for failures made from another address. IPv6 addresses count by /64.
"""

from __future__ import annotations

import ipaddress
import logging
import math
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from .errors import RateLimited

if TYPE_CHECKING:
    from .metrics import Metrics

Kind = Literal["login", "client_secret"]

_MAX_TRACKED = 100_000  # keys remembered at once per window; the oldest are forgotten first
_EVENTS = {"login": "login_rate_limited", "client_secret": "client_auth_rate_limited"}
security = logging.getLogger("auth_service.security")


@dataclass(frozen=True, slots=True)
class Limits:
    max_failures: int  # per (subject, address)
    max_attempts_per_address: int
    ceiling: int  # failures per subject from every address before each address gets one guess
    window: float


@dataclass(frozen=True, slots=True)
class Reservation:
    """One attempt held against the limits: `retry_after` > 0 means none was taken."""

    retry_after: int
    kind: Kind = "login"
    subject: str = ""
    address: str = ""
    at: float = 0.0
    token: str = ""


class LoginLimiter(Protocol):
    async def reserve(self, kind: Kind, subject: str, address: str, now: float) -> Reservation:
        """Check the limits and, if under them, take one attempt, atomically."""

    async def settle(self, reservation: Reservation, *, failed: bool) -> None:
        """A failure keeps the attempt counted; a success gives its failure slots back."""


def address_bucket(address: str) -> str:
    """What one client address counts as: itself, or its /64 for IPv6 (one subscriber)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip.ipv4_mapped or ip) if isinstance(ip, ipaddress.IPv6Address) else str(ip)


async def reserve_or_refuse(
    limiter: LoginLimiter,
    kind: Kind,
    subject: str,
    address: str,
    now: float,
    *,
    client_id: str,
    metrics: Metrics,
) -> Reservation:
    """Take an attempt before any hashing, or raise `RateLimited` (429), logged and counted."""
    reservation = await limiter.reserve(kind, subject, address_bucket(address), now)
    if reservation.retry_after:
        security.warning(_EVENTS[kind], extra={"client_id": client_id, "retry_after": reservation.retry_after})
        metrics.rate_limited(kind)
        raise RateLimited(reservation.retry_after)
    return reservation


class _Window:
    """Event times per key within a sliding window, at most `capacity` each, bounded keys."""

    def __init__(self, capacity: int, window: float) -> None:
        self.capacity = capacity
        self.window = window
        self._events: OrderedDict[str, deque[float]] = OrderedDict()

    def wait(self, key: str, now: float, limit: int) -> int:
        """Seconds until fewer than `limit` events lie in the window (0: already)."""
        events = self._events.get(key)
        if not events or len(events) < limit:
            return 0
        left = events[-limit] + self.window - now  # the limit-th newest must age out
        return math.ceil(left) if left > 0 else 0

    def add(self, key: str, now: float) -> None:
        events = self._events.get(key)
        if events is None:
            events = self._events[key] = deque(maxlen=self.capacity)
            if len(self._events) > _MAX_TRACKED:
                self._events.popitem(last=False)
        else:
            self._events.move_to_end(key)
        events.append(now)

    def discard(self, key: str, at: float) -> None:
        events = self._events.get(key)
        if events is not None and at in events:
            events.remove(at)


class MemoryLoginLimiter:
    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._pairs = _Window(limits.max_failures, limits.window)
        self._addresses = _Window(limits.max_attempts_per_address, limits.window)
        self._subjects = _Window(limits.ceiling, limits.window)

    async def reserve(self, kind: Kind, subject: str, address: str, now: float) -> Reservation:
        return self.reserve_now(kind, subject, address, now)

    def reserve_now(self, kind: Kind, subject: str, address: str, now: float) -> Reservation:
        """The check and the reservation with no await between them: one step on the event loop."""
        pair = _pair(kind, subject, address)
        per_pair = self._limits.max_failures
        if kind == "login" and self._subjects.wait(subject, now, self._limits.ceiling):
            per_pair = 1  # over the ceiling: throttled to one guess per address and window
        wait = max(
            self._pairs.wait(pair, now, per_pair),
            self._addresses.wait(f"{kind}\0{address}", now, self._limits.max_attempts_per_address),
        )
        if wait:
            return Reservation(wait)
        self.record(kind, subject, address, now)
        return Reservation(0, kind, subject, address, now)

    def record(self, kind: Kind, subject: str, address: str, now: float) -> None:
        self._pairs.add(_pair(kind, subject, address), now)
        self._addresses.add(f"{kind}\0{address}", now)
        if kind == "login":
            self._subjects.add(subject, now)

    async def settle(self, reservation: Reservation, *, failed: bool) -> None:
        if failed or reservation.retry_after:
            return
        self._pairs.discard(_pair(reservation.kind, reservation.subject, reservation.address), reservation.at)
        if reservation.kind == "login":
            self._subjects.discard(reservation.subject, reservation.at)
        else:  # for clients the address counts failures only: a busy client is not throttled
            self._addresses.discard(f"client_secret\0{reservation.address}", reservation.at)


def _pair(kind: Kind, subject: str, address: str) -> str:
    return f"{kind}\0{subject}\0{address}"
