"""Sticky sessions: each replica keeps its own sessions in memory; the balancer brings users back to it.

This is Tomcat's `jvmRoute` as it is run behind nginx OSS. The replica that creates a session
at login also sets a `route` cookie naming itself (`route=sticky-2`, HttpOnly, Path=/,
SameSite=Lax, the session's lifetime); the balancer sends a request carrying a known route
to that replica (nginx: `map $cookie_route $sticky_upstream`, see `nginx.py`; the Python
balancer: a dict lookup, see `balancer.py`) and anything else, the login itself included,
round robin. Replicas share nothing, and the session id stays 128 random bits: the route
travels beside it, not inside it.

What it pays, and what the benchmark measures: when a replica dies, its sessions die with
it. Both balancers then send its users on to the live replicas (nginx lists them as `backup`
in the route's upstream), which have never seen them: 401, log in again, and that login
pins them to the replica that took it.
"""

from __future__ import annotations

from .common import MemoryStore

__all__ = ["StickyStore"]


class StickyStore(MemoryStore):
    """A `MemoryStore` whose users the balancer pins here, by the `route` cookie set at login."""

    name = "sticky"
    pinned = True
