"""The replica's copy of the issuer's revocation list and the feed rules that keep it.

Pure: no I/O and no clock of its own; `revocation_sync.py` moves the bytes.
The feed (docs/wire.md) is an ordered sequence with a cursor; a snapshot pull
replaces the copy (read into fresh tables, swapped in at its last page), a delta pull
or an in-order push extends it, and a gap, a heartbeat ahead of us or a new feed id
asks for a pull. A snapshot is taken again every `snapshot_interval`, so an entry that
was never in the feed cannot stay.

Storage is kept flat because the copy may hold a million entries: each kind is an
open-addressing table of 63-bit hashes in `array`s (no Python object per entry), with
expiry buckets so pruning touches only what has expired.
"""

from __future__ import annotations

import heapq
import logging
import math
from array import array
from collections.abc import Mapping
from typing import Any, TypeGuard

__all__ = ["RevocationList"]

logger = logging.getLogger(__name__)

_KINDS = ("jti", "sid", "sub")
_HASH_BITS = 0x7FFF_FFFF_FFFF_FFFF  # 63 bits: fits a signed 64-bit slot; 0 marks a free slot
_MAX_SECOND = 2**32 - 1  # expiry seconds are stored in 32 unsigned bits (until 2106)
_MIN_CAPACITY = 16


def _key(value: str) -> int:
    return (hash(value) & _HASH_BITS) or 1


class _Expiring:
    """Revoked values with the second they stop mattering; the latest expiry wins.

    A million entries must fit in well under 100 MB, and a Python set or dict costs
    about 90 bytes per entry once the int objects are counted. This is a linear-probing
    hash table over two flat arrays (value hash, expiry second), kept at most half full:
    about 32 bytes per entry with the expiry buckets. A value is held as its 63-bit
    `hash()`: Python salts str hashes per process, so nobody can aim a collision; an
    accidental one could only refuse a valid token (fail closed), with odds of about
    entries / 2**63 per request.
    """

    def __init__(self) -> None:
        self._count = 0
        self._allocate(_MIN_CAPACITY)
        self._due: dict[int, array[int]] = {}  # expiry second -> keys to look at then
        self._times: list[int] = []  # heap of the keys of _due

    def _allocate(self, capacity: int) -> None:
        self._mask = capacity - 1
        self._keys = array("q", bytes(8 * capacity))
        self._expiry = array("I", bytes(4 * capacity))

    def __len__(self) -> int:
        return self._count

    def __contains__(self, value: str) -> bool:
        """Per request: one or two array reads at this load."""
        key = (hash(value) & _HASH_BITS) or 1
        keys, mask = self._keys, self._mask
        slot = key & mask
        while True:
            found = keys[slot]
            if found == key:
                return True
            if not found:
                return False
            slot = (slot + 1) & mask

    def _slot(self, key: int) -> int:
        """The slot holding `key`, or the free slot where it would go."""
        keys, mask = self._keys, self._mask
        slot = key & mask
        while True:
            found = keys[slot]
            if found == key or not found:
                return slot
            slot = (slot + 1) & mask

    def add(self, value: str, expires_at: float) -> int:
        """Hold `value` until `expires_at` (or later, if it already was); returns its key."""
        key = _key(value)
        second = min(math.ceil(expires_at), _MAX_SECOND)
        slot = self._slot(key)
        if self._keys[slot] == key:
            if self._expiry[slot] >= second:
                return key
        else:
            if 2 * (self._count + 1) > len(self._keys):
                self._grow()
                slot = self._slot(key)
            self._keys[slot] = key
            self._count += 1
        self._expiry[slot] = second
        bucket = self._due.get(second)
        if bucket is None:
            bucket = self._due[second] = array("q")
            heapq.heappush(self._times, second)
        bucket.append(key)
        return key

    def prune(self, now: float) -> list[int]:
        """Forget what expired by `now`; returns the keys removed."""
        removed: list[int] = []
        while self._times and self._times[0] <= now:
            second = heapq.heappop(self._times)
            for key in self._due.pop(second):
                slot = self._slot(key)
                # A later entry for the same value may have pushed its expiry out.
                if self._keys[slot] == key and self._expiry[slot] <= now:
                    self._delete(slot)
                    removed.append(key)
        if self._count * 8 < len(self._keys) and len(self._keys) > _MIN_CAPACITY:
            capacity = _MIN_CAPACITY  # a quarter full after shrinking: room to grow again
            while capacity < 4 * self._count:
                capacity *= 2
            self._rehash(capacity)
        return removed

    def _delete(self, hole: int) -> None:
        """Empty a slot, moving later entries of its probe run back (no tombstones)."""
        keys, expiry, mask = self._keys, self._expiry, self._mask
        slot = hole
        while True:
            slot = (slot + 1) & mask
            key = keys[slot]
            if not key:
                break
            home = key & mask
            # An entry whose home lies cyclically in (hole, slot] is still reachable; any
            # other would be cut off from its home by the hole, so it moves into it.
            reachable = hole < home <= slot if hole < slot else (home > hole or home <= slot)
            if not reachable:
                keys[hole], expiry[hole] = key, expiry[slot]
                hole = slot
        keys[hole] = 0
        expiry[hole] = 0
        self._count -= 1

    def _grow(self) -> None:
        self._rehash(len(self._keys) * 2)

    def _rehash(self, capacity: int) -> None:
        old_keys, old_expiry = self._keys, self._expiry
        self._allocate(capacity)
        keys, expiry, mask = self._keys, self._expiry, self._mask
        for index, key in enumerate(old_keys):
            if key:
                slot = key & mask
                while keys[slot]:
                    slot = (slot + 1) & mask
                keys[slot] = key
                expiry[slot] = old_expiry[index]


class RevocationList:
    """Which access tokens are revoked, and how far this copy trails the feed."""

    def __init__(self, *, snapshot_interval: float = 600.0) -> None:
        self.feed: str | None = None
        self.cursor = 0
        self._in_sync_at: float | None = None
        self._snapshot_interval = snapshot_interval
        self._snapshot_at: float | None = None  # when the last snapshot was taken in
        # Bumped by every change that may revoke more (an entry added, a snapshot swapped
        # in; pruning only ever un-revokes what has expired): a token found unrevoked at
        # one version is unrevoked at that version still, which the verifier's cache uses.
        self.version = 0
        self._live = _Tables()
        self._staged: _Tables | None = None  # a snapshot being read, page by page
        self._use(self._live)

    def _use(self, tables: _Tables) -> None:
        self.version += 1
        self._live = tables
        self._entries = tables.entries
        self._jti, self._sid = tables.entries["jti"], tables.entries["sid"]
        self._before = tables.before

    def __len__(self) -> int:
        return sum(len(entries) for entries in self._entries.values())

    def is_revoked(self, claims: Mapping[str, Any]) -> bool:
        """O(1): the token's jti, its sid, or its subject before a time."""
        # Runs on every request, cached token or not: an empty table costs no lookup.
        jti_table, sid_table = self._jti, self._sid
        jti, sid, sub = claims.get("jti"), claims.get("sid"), claims.get("sub")
        if jti is not None and jti_table._count and jti in jti_table:
            return True
        if sid is not None and sid_table._count and sid in sid_table:
            return True
        before = self._before.get(_key(sub)) if sub is not None and self._before else None
        return before is not None and claims["iat"] < before

    def staleness(self, now: float) -> float | None:
        """Seconds since this copy was last known in sync; None if it never was."""
        return None if self._in_sync_at is None else max(0.0, now - self._in_sync_at)

    def pull_params(self, now: float | None = None) -> dict[str, str]:
        """Query for the next pull: a delta after our cursor, or a snapshot (the first time,
        and every `snapshot_interval` seconds, so anything wrongly held is dropped)."""
        if self.feed is None:
            return {}
        if (
            self._staged is None
            and now is not None
            and self._snapshot_at is not None
            and now - self._snapshot_at >= self._snapshot_interval
        ):
            return {}
        return {"after": str(self.cursor), "feed": self.feed}

    def apply_pull(self, body: Any, now: float, *, read_at: float | None = None) -> bool:
        """Apply one `GET /revocations` answer (one page); `ValueError` if it is not one.

        True when the issuer has more pages: pull again after the new cursor. Only the
        last page puts the copy in sync, as of `read_at`: when the issuer read its feed for
        that page (its `Feed-Read-At`), which a cache may have kept a while. Never later
        than `now`; None (an issuer that does not say) means `now`."""
        if not isinstance(body, dict):
            raise ValueError("revocation pull is not a JSON object")
        feed, cursor, snapshot, entries = (
            body.get("feed"),
            body.get("cursor"),
            body.get("snapshot"),
            body.get("entries"),
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
            # Authoritative for everything at or below its cursor: it is read into fresh
            # tables and replaces what we hold at its last page, so an entry that never was
            # in the feed (a forged push) does not outlive it. Until then we answer from
            # what we hold, and pushes go into both.
            self._staged = _Tables()
            self.feed, self.cursor = feed, cursor
            self._snapshot_at = now
        else:
            self.cursor = max(self.cursor, cursor)  # pushes may have run ahead meanwhile
        for entry in entries:
            if not self._add(entry, now, self._staged):
                logger.warning("revocation entry skipped: not a valid entry")
        if not more:
            in_sync_at = min(read_at, now) if _is_number(read_at) and read_at >= 0 else now
            if self._staged is not None:
                # The fresh tables hold the feed as of this page's read, and no later:
                # what a heartbeat vouched for meanwhile was the copy they replace.
                self._use(self._staged)
                self._staged = None
                self._in_sync_at = in_sync_at
            elif self._in_sync_at is None or in_sync_at > self._in_sync_at:
                # A delta only adds: a later heartbeat at our cursor still vouches.
                self._in_sync_at = in_sync_at
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
        if self._staged is not None:
            self._add(entry, now, self._staged)
        if seq != self.cursor + 1:
            return True  # applied, but the entries in between are missing
        self.cursor = seq
        return False

    def apply_heartbeat(self, data: Any, now: float) -> bool:
        """Handle a heartbeat; True if the copy needs a pull.

        A heartbeat vouches for the issuer's read of its feed at `time`, not for the moment
        it arrived: an issuer that cannot read its database sends none, and one replayed or
        delayed vouches only for when it was read. Never later than our own clock."""
        feed = data.get("feed") if isinstance(data, dict) else None
        cursor = data.get("cursor") if isinstance(data, dict) else None
        read_at = data.get("time") if isinstance(data, dict) else None
        if not isinstance(feed, str) or not _is_int(cursor) or not _is_number(read_at):
            logger.warning("revocation heartbeat is not valid; pulling instead")
            return True
        if feed != self.feed or cursor != self.cursor:
            # Ahead: we missed entries. Behind: the issuer lost some; its snapshot
            # tells us where it stands.
            return True
        read_at = min(read_at, now)
        if self._in_sync_at is None or read_at > self._in_sync_at:
            self._in_sync_at = read_at
        return False

    def prune(self, now: float) -> None:
        """Drop entries after which no token they match can still be valid."""
        self._live.prune(now)
        if self._staged is not None:
            self._staged.prune(now)

    def _add(self, entry: Any, now: float, tables: _Tables | None = None) -> bool:
        """Hold a feed entry in `tables` (None: what we answer from); False if invalid."""
        if tables is None:
            tables = self._live
        if not isinstance(entry, dict):
            return False
        kind, value, expires_at = entry.get("kind"), entry.get("value"), entry.get("expires_at")
        if kind not in _KINDS or not isinstance(value, str) or not _is_number(expires_at):
            return False
        before = entry.get("before")
        if kind == "sub" and not _is_number(before):
            return False
        if expires_at > now:  # else valid, but it can no longer match a live token
            self.version += 1
            key = tables.entries[kind].add(value, expires_at)
            if kind == "sub" and _is_number(before):
                tables.before[key] = max(before, tables.before.get(key, before))
        return True


class _Tables:
    """One full copy of the revoked values: what we answer from, or a snapshot being read."""

    def __init__(self) -> None:
        self.entries = {kind: _Expiring() for kind in _KINDS}
        # _key(sub) -> the latest `before`: iat < before is revoked. Merging entries by
        # max is exact for live tokens: an older, smaller `before` expires no later.
        self.before: dict[int, float] = {}

    def prune(self, now: float) -> None:
        for kind, entries in self.entries.items():
            removed = entries.prune(now)
            if kind == "sub":
                for sub in removed:
                    del self.before[sub]


def _is_int(value: Any) -> TypeGuard[int]:
    return type(value) is int


def _is_number(value: Any) -> TypeGuard[float]:
    # Not bool, NaN or infinity (httpx's JSON parser accepts both).
    return type(value) is int or (type(value) is float and math.isfinite(value))
