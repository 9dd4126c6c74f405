"""The replica's copy of the issuer's revocation list and the feed rules that keep it.

Pure: no I/O and no clock of its own; `revocation_sync.py` moves the bytes.
The feed (docs/wire.md) is an ordered sequence with a cursor; a snapshot pull
replaces the copy, a delta pull or an in-order push extends it, and a gap, a
heartbeat ahead of us or a new feed id asks for a pull.

Storage is kept flat because the copy may hold a million entries: one dict
per kind mapping the revoked value to its expiry, and expiry buckets so pruning
touches only what has expired. No object per entry beyond the value itself.
"""

from __future__ import annotations

import heapq
import logging
import math
from collections.abc import Mapping
from typing import Any, TypeGuard

__all__ = ["RevocationList"]

logger = logging.getLogger(__name__)

_KINDS = ("jti", "sid", "sub")


class _Expiring:
    """Revoked values with the time they stop mattering; the latest expiry wins.

    A million entries must fit in well under 100 MB, so a value is held as its 64-bit
    `hash()` rather than as the string (~70 bytes each), and every entry expiring in
    the same second shares one int. Python salts str hashes per process, so nobody can
    aim a collision; an accidental one could only refuse a valid token (fail closed),
    with odds of about entries / 2**64 per request.
    """

    def __init__(self) -> None:
        self.expiry: dict[int, int] = {}  # hash(value) -> expires_at (whole seconds)
        self._due: dict[int, list[int]] = {}  # expires_at -> hashes to look at then
        self._times: list[int] = []  # heap of the keys of _due
        self._seconds: dict[int, int] = {}  # one shared int per expiry second

    def add(self, value: str, expires_at: float) -> int:
        key = hash(value)
        second = math.ceil(expires_at)
        second = self._seconds.setdefault(second, second)
        current = self.expiry.get(key)
        if current is not None and current >= second:
            return key
        self.expiry[key] = second
        bucket = self._due.get(second)
        if bucket is None:
            bucket = self._due[second] = []
            heapq.heappush(self._times, second)
        bucket.append(key)
        return key

    def prune(self, now: float) -> list[int]:
        """Forget what expired by `now`; returns the hashes removed."""
        removed: list[int] = []
        while self._times and self._times[0] <= now:
            second = heapq.heappop(self._times)
            del self._seconds[second]
            for key in self._due.pop(second):
                # A later entry for the same value may have pushed its expiry out.
                if self.expiry.get(key, math.inf) <= now:
                    del self.expiry[key]
                    removed.append(key)
        return removed

    def __len__(self) -> int:
        return len(self.expiry)


class RevocationList:
    """Which access tokens are revoked, and how far this copy trails the feed."""

    def __init__(self) -> None:
        self.feed: str | None = None
        self.cursor = 0
        self._in_sync_at: float | None = None
        self._reset()

    def _reset(self) -> None:
        self._entries = {kind: _Expiring() for kind in _KINDS}
        self._jti, self._sid = self._entries["jti"].expiry, self._entries["sid"].expiry
        # hash(sub) -> the latest `before`: iat < before is revoked. Merging entries by
        # max is exact for live tokens: an older, smaller `before` expires no later.
        self._before: dict[int, float] = {}

    def __len__(self) -> int:
        return sum(len(entries) for entries in self._entries.values())

    def is_revoked(self, claims: Mapping[str, Any]) -> bool:
        """O(1): the token's jti, its sid, or its subject before a time."""
        # Plain dict lookups: this runs on every request, cached token or not.
        jti, sid, sub = claims.get("jti"), claims.get("sid"), claims.get("sub")
        if jti is not None and hash(jti) in self._jti:
            return True
        if sid is not None and hash(sid) in self._sid:
            return True
        before = self._before.get(hash(sub)) if sub is not None else None
        return before is not None and claims["iat"] < before

    def staleness(self, now: float) -> float | None:
        """Seconds since this copy was last known in sync; None if it never was."""
        return None if self._in_sync_at is None else max(0.0, now - self._in_sync_at)

    def pull_params(self) -> dict[str, str]:
        """Query for the next pull: a delta after our cursor, or a snapshot."""
        if self.feed is None:
            return {}
        return {"after": str(self.cursor), "feed": self.feed}

    def apply_pull(self, body: Any, now: float) -> bool:
        """Apply one `GET /revocations` answer (one page); `ValueError` if it is not one.

        True when the issuer has more pages: pull again after the new cursor. Only the
        last page puts the copy in sync."""
        if not isinstance(body, dict):
            raise ValueError("revocation pull is not a JSON object")
        feed, cursor, snapshot, entries = (
            body.get("feed"), body.get("cursor"), body.get("snapshot"), body.get("entries")
        )
        more = body.get("more", False)
        if not isinstance(more, bool):
            raise ValueError("revocation pull has a non-boolean more flag")
        if not isinstance(feed, str) or not _is_int(cursor) or cursor < 0:
            raise ValueError("revocation pull has no feed or cursor")
        if not isinstance(snapshot, bool) or not isinstance(entries, list):
            raise ValueError("revocation pull has no snapshot flag or entries")
        if not snapshot and feed != self.feed:
            raise ValueError("revocation delta is for another feed")
        if snapshot:
            if feed != self.feed:
                self._reset()  # another feed: nothing we hold is meaningful any more
            # Same feed: keep what we hold. Entries missing from the snapshot either
            # expired or arrived by push after it was taken; either way harmless.
            self.feed, self.cursor = feed, cursor
        else:
            self.cursor = max(self.cursor, cursor)  # pushes may have run ahead meanwhile
        for entry in entries:
            if not self._add(entry, now):
                logger.warning("revocation entry skipped: not a valid entry")
        if not more:
            self._in_sync_at = now
        self.prune(now)
        return more

    def apply_push(self, entry: Any, now: float) -> bool:
        """Apply a pushed entry; True if the copy now needs a pull to close a gap."""
        seq = entry.get("seq") if isinstance(entry, dict) else None
        if not _is_int(seq):
            logger.warning("pushed revocation entry is not valid; pulling instead")
            return True
        if self.feed is None:
            self._add(entry, now)  # honour it now; the pull will bring the rest
            return True
        if seq <= self.cursor:
            return False
        if not self._add(entry, now):
            logger.warning("pushed revocation entry is not valid; pulling instead")
            return True
        if seq != self.cursor + 1:
            return True  # applied, but the entries in between are missing
        self.cursor = seq
        return False

    def apply_heartbeat(self, data: Any, now: float) -> bool:
        """Handle a heartbeat; True if the copy needs a pull."""
        feed = data.get("feed") if isinstance(data, dict) else None
        cursor = data.get("cursor") if isinstance(data, dict) else None
        if not isinstance(feed, str) or not _is_int(cursor):
            logger.warning("revocation heartbeat is not valid; pulling instead")
            return True
        if feed != self.feed or cursor != self.cursor:
            # Ahead: we missed entries. Behind: the issuer lost some; its snapshot
            # tells us where it stands.
            return True
        self._in_sync_at = now
        return False

    def prune(self, now: float) -> None:
        """Drop entries after which no token they match can still be valid."""
        for kind, entries in self._entries.items():
            removed = entries.prune(now)
            if kind == "sub":
                for sub in removed:
                    del self._before[sub]

    def _add(self, entry: Any, now: float) -> bool:
        if not isinstance(entry, dict):
            return False
        kind, value, expires_at = entry.get("kind"), entry.get("value"), entry.get("expires_at")
        if kind not in _KINDS or not isinstance(value, str) or not _is_number(expires_at):
            return False
        before = entry.get("before")
        if kind == "sub" and not _is_number(before):
            return False
        if expires_at > now:  # else valid, but it can no longer match a live token
            key = self._entries[kind].add(value, expires_at)
            if kind == "sub" and _is_number(before):
                self._before[key] = max(before, self._before.get(key, before))
        return True


def _is_int(value: Any) -> TypeGuard[int]:
    return type(value) is int


def _is_number(value: Any) -> TypeGuard[float]:
    # Not bool, NaN or infinity (httpx's JSON parser accepts both).
    return type(value) is int or (type(value) is float and math.isfinite(value))
