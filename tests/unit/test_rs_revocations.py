"""resource_service.revocations: the replica's copy of the feed and its rules."""

from __future__ import annotations

from typing import Any

import pytest

from resource_service.revocations import RevocationList

NOW = 1_700_000_000
LATER = NOW + 600


def entry(seq: int, kind: str, value: str, *, before: int | None = None, expires_at: int = LATER) -> dict[str, Any]:
    return {"seq": seq, "kind": kind, "value": value, "before": before, "expires_at": expires_at}


def pull(feed: str, cursor: int, entries: list[dict[str, Any]], *, snapshot: bool) -> dict[str, Any]:
    return {"feed": feed, "cursor": cursor, "snapshot": snapshot, "entries": entries}


def token(jti: str = "j-x", sid: str | None = "s-x", sub: str = "u-x", iat: int = NOW) -> dict[str, Any]:
    claims = {"jti": jti, "sub": sub, "iat": iat}
    if sid is not None:
        claims["sid"] = sid
    return claims


@pytest.fixture
def copy() -> RevocationList:
    revocations = RevocationList()
    revocations.apply_pull(pull("F", 2, [entry(1, "jti", "j-1"), entry(2, "sid", "s-1")], snapshot=True), NOW)
    return revocations


def test_snapshot_sets_feed_cursor_and_entries(copy):
    assert (copy.feed, copy.cursor, len(copy)) == ("F", 2, 2)
    assert copy.is_revoked(token(jti="j-1"))
    assert copy.is_revoked(token(sid="s-1"))
    assert not copy.is_revoked(token())


def test_first_pull_asks_for_a_snapshot_and_later_pulls_for_a_delta(copy):
    assert RevocationList().pull_params() == {}
    assert copy.pull_params() == {"after": "2", "feed": "F"}


def test_delta_appends_and_moves_the_cursor_to_the_head(copy):
    copy.apply_pull(pull("F", 7, [entry(5, "jti", "j-5")], snapshot=False), NOW)
    assert copy.cursor == 7
    assert copy.is_revoked(token(jti="j-5")) and copy.is_revoked(token(jti="j-1"))


def test_delta_never_moves_the_cursor_back_behind_pushes_that_raced_it(copy):
    assert copy.apply_push(entry(3, "jti", "j-3"), NOW) is False
    copy.apply_pull(pull("F", 2, [], snapshot=False), NOW)
    assert copy.cursor == 3


def test_snapshot_of_another_feed_replaces_the_copy(copy):
    copy.apply_pull(pull("G", 1, [entry(1, "jti", "j-new")], snapshot=True), NOW)
    assert (copy.feed, copy.cursor) == ("G", 1)
    assert not copy.is_revoked(token(jti="j-1"))
    assert copy.is_revoked(token(jti="j-new"))


def test_a_snapshot_is_authoritative_and_drops_what_the_feed_does_not_hold(copy):
    assert copy.apply_push(entry(3, "sub", "victim", before=NOW + 1), NOW) is False  # a forged push
    assert copy.is_revoked(token(sub="victim"))
    copy.apply_pull(pull("F", 3, [entry(1, "jti", "j-1"), entry(2, "sid", "s-1")], snapshot=True), NOW)
    assert not copy.is_revoked(token(sub="victim"))  # healed
    assert copy.is_revoked(token(jti="j-1")) and copy.is_revoked(token(sid="s-1"))


def test_a_paged_snapshot_answers_from_the_old_copy_until_its_last_page(copy):
    first = {**pull("F", 1, [entry(1, "jti", "j-1")], snapshot=True), "more": True}
    assert copy.apply_pull(first, NOW) is True
    assert copy.is_revoked(token(sid="s-1"))  # not yet re-read: still held
    assert copy.apply_push(entry(3, "jti", "j-3"), NOW) is True  # arrives mid-snapshot (a gap)
    copy.apply_pull(pull("F", 2, [entry(2, "sid", "s-1")], snapshot=False), NOW)
    assert copy.is_revoked(token(sid="s-1")) and copy.is_revoked(token(jti="j-1"))
    assert copy.is_revoked(token(jti="j-3")), "a push during the snapshot survives the swap"


def test_a_snapshot_is_asked_for_again_every_snapshot_interval():
    copy = RevocationList(snapshot_interval=600)
    copy.apply_pull(pull("F", 2, [], snapshot=True), NOW)
    assert copy.pull_params(NOW + 599) == {"after": "2", "feed": "F"}
    assert copy.pull_params(NOW + 600) == {}


def test_a_heartbeat_vouches_for_its_read_time_not_its_arrival(copy):
    assert copy.apply_heartbeat({"feed": "F", "cursor": 2, "time": NOW + 10}, NOW + 100) is False
    assert copy.staleness(NOW + 100) == 90
    assert copy.apply_heartbeat({"feed": "F", "cursor": 2, "time": NOW + 500}, NOW + 100) is False
    assert copy.staleness(NOW + 100) == 0  # a clock ahead of ours vouches for no later than now


def test_a_pull_is_in_sync_as_of_the_issuers_read_not_its_arrival():
    copy = RevocationList()
    copy.apply_pull(pull("F", 1, [entry(1, "jti", "j-1")], snapshot=True), NOW, read_at=NOW - 30)
    assert copy.staleness(NOW) == 30 and copy.is_revoked(token(jti="j-1"))
    copy.apply_pull(pull("F", 1, [], snapshot=False), NOW + 10, read_at=NOW + 3600)
    assert copy.staleness(NOW + 20) == 10  # a clock ahead of ours vouches for no later than now


def test_a_pull_with_no_usable_read_time_counts_as_read_on_arrival():
    for read_at in (None, float("nan"), float("inf"), -1.0):
        copy = RevocationList()
        copy.apply_pull(pull("F", 1, [], snapshot=True), NOW, read_at=read_at)
        assert copy.staleness(NOW + 5) == 5, read_at


def test_a_cached_delta_does_not_take_back_what_a_later_heartbeat_vouched_for(copy):
    assert copy.apply_heartbeat({"feed": "F", "cursor": 2, "time": NOW + 50}, NOW + 60) is False
    copy.apply_pull(pull("F", 2, [], snapshot=False), NOW + 60, read_at=NOW + 20)
    assert copy.staleness(NOW + 60) == 10  # the heartbeat's read, not the older page's


def test_a_cached_snapshot_is_in_sync_only_as_of_its_own_read(copy):
    # The fresh tables replace what the heartbeat vouched for: only their own read counts.
    assert copy.apply_heartbeat({"feed": "F", "cursor": 2, "time": NOW + 50}, NOW + 60) is False
    copy.apply_pull(pull("F", 2, [entry(1, "jti", "j-1")], snapshot=True), NOW + 60, read_at=NOW + 20)
    assert copy.staleness(NOW + 60) == 40


def test_delta_for_another_feed_is_refused(copy):
    with pytest.raises(ValueError):
        copy.apply_pull(pull("G", 9, [], snapshot=False), NOW)


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"feed": "F"},
        {"feed": 1, "cursor": 1, "snapshot": True, "entries": []},
        {"feed": "F", "cursor": True, "snapshot": True, "entries": []},
        {"feed": "F", "cursor": -1, "snapshot": True, "entries": []},
        {"feed": "F", "cursor": 1, "snapshot": "yes", "entries": []},
        {"feed": "F", "cursor": 1, "snapshot": True, "entries": {}},
    ],
)
def test_malformed_pull_is_refused_and_changes_nothing(copy, body):
    with pytest.raises(ValueError):
        copy.apply_pull(body, NOW)
    assert (copy.feed, copy.cursor, len(copy)) == ("F", 2, 2)


def test_malformed_entries_in_a_pull_are_skipped(copy):
    bad = [
        {"seq": 3},
        entry(4, "email", "x"),
        entry(5, "sub", "u-1"),
        entry(6, "jti", "j-6"),
        {**entry(7, "jti", "j-7"), "expires_at": float("inf")},
        {**entry(8, "jti", "j-8"), "expires_at": True},
    ]
    copy.apply_pull(pull("F", 8, bad, snapshot=False), NOW)
    assert copy.cursor == 8 and len(copy) == 3
    assert not copy.is_revoked(token(sub="u-1"))  # a sub entry without `before` is void


def test_push_in_order_applies_and_advances(copy):
    assert copy.apply_push(entry(3, "jti", "j-3"), NOW) is False
    assert copy.cursor == 3 and copy.is_revoked(token(jti="j-3"))


def test_push_with_a_gap_is_honoured_at_once_but_asks_for_a_pull(copy):
    assert copy.apply_push(entry(5, "jti", "j-5"), NOW) is True
    assert copy.cursor == 2  # entries 3 and 4 are still missing
    assert copy.is_revoked(token(jti="j-5"))


def test_push_already_applied_is_ignored(copy):
    assert copy.apply_push(entry(2, "jti", "j-other"), NOW) is False
    assert not copy.is_revoked(token(jti="j-other"))


def test_push_before_any_pull_asks_for_a_pull():
    assert RevocationList().apply_push(entry(1, "jti", "j-1"), NOW) is True


@pytest.mark.parametrize("pushed", ["x", {"seq": "3"}, {"seq": 3, "kind": "jti"}])
def test_malformed_push_asks_for_a_pull(copy, pushed):
    assert copy.apply_push(pushed, NOW) is True
    assert copy.cursor == 2


def test_heartbeat_at_our_cursor_marks_the_copy_in_sync(copy):
    assert copy.staleness(NOW + 40) == 40
    assert copy.apply_heartbeat({"feed": "F", "cursor": 2, "time": NOW + 40}, NOW + 40) is False
    assert copy.staleness(NOW + 41) == 1


@pytest.mark.parametrize(
    "heartbeat",
    [
        {"feed": "F", "cursor": 3},  # ahead: we missed entries
        {"feed": "F", "cursor": 1},  # behind: the issuer lost entries
        {"feed": "G", "cursor": 2},  # another feed: the issuer's database changed
        {"cursor": 2},
        "garbage",
    ],
    ids=["ahead", "behind", "feed changed", "no feed", "not an object"],
)
def test_heartbeat_out_of_step_asks_for_a_pull_and_does_not_mark_in_sync(copy, heartbeat):
    assert copy.apply_heartbeat(heartbeat, NOW + 40) is True
    assert copy.staleness(NOW + 40) == 40


def test_staleness_is_none_until_the_first_pull():
    assert RevocationList().staleness(NOW) is None


def test_sub_before_revokes_tokens_issued_strictly_before(copy):
    copy.apply_push(entry(3, "sub", "u-1", before=NOW), NOW)
    assert copy.is_revoked(token(sub="u-1", iat=NOW - 1))
    assert not copy.is_revoked(token(sub="u-1", iat=NOW))  # iat == before: issued after
    assert not copy.is_revoked(token(sub="u-2", iat=NOW - 1))


def test_sub_before_keeps_the_latest_time(copy):
    copy.apply_push(entry(3, "sub", "u-1", before=NOW + 10), NOW)
    copy.apply_push(entry(4, "sub", "u-1", before=NOW), NOW)
    assert copy.is_revoked(token(sub="u-1", iat=NOW + 5))


def test_sid_revokes_every_token_of_the_session_and_tokens_without_sid_are_untouched(copy):
    assert copy.is_revoked(token(jti="a", sid="s-1")) and copy.is_revoked(token(jti="b", sid="s-1"))
    assert not copy.is_revoked(token(sid=None))


def test_prune_drops_entries_past_expires_at_only(copy):
    copy.apply_push(entry(3, "jti", "j-3", expires_at=NOW + 100), NOW)
    copy.apply_push(entry(4, "sub", "u-1", before=NOW, expires_at=NOW + 100), NOW)
    copy.prune(NOW + 99)
    assert copy.is_revoked(token(jti="j-3")) and copy.is_revoked(token(sub="u-1", iat=NOW - 1))
    copy.prune(NOW + 100)
    assert not copy.is_revoked(token(jti="j-3"))
    assert not copy.is_revoked(token(sub="u-1", iat=NOW - 1))
    assert copy.is_revoked(token(jti="j-1"))  # expires later


def test_prune_keeps_a_value_revoked_again_with_a_later_expiry(copy):
    copy.apply_push(entry(3, "sid", "s-9", expires_at=NOW + 100), NOW)
    copy.apply_push(entry(4, "sid", "s-9", expires_at=NOW + 200), NOW)
    copy.prune(NOW + 150)
    assert copy.is_revoked(token(sid="s-9"))
    copy.prune(NOW + 200)
    assert not copy.is_revoked(token(sid="s-9"))


def test_entries_already_expired_are_not_stored(copy):
    copy.apply_push(entry(3, "jti", "j-old", expires_at=NOW - 1), NOW)
    assert copy.cursor == 3 and not copy.is_revoked(token(jti="j-old"))


def test_the_compact_table_agrees_with_a_plain_dict_through_growth_prunes_and_shrinking():
    """The hash table behind each kind (open addressing, deletion by shifting entries back)
    against a dict model: thousands of adds with random expiries, re-adds that extend or
    not, and prunes that empty most of it, checking every value ever added each round."""
    import random

    from resource_service.revocations import _Expiring

    rng = random.Random(7)
    table, model = _Expiring(), {}
    values = [f"jti-{i}" for i in range(3000)]
    now = 1000
    for _round in range(12):
        for value in rng.sample(values, 600):
            expires = now + rng.randint(1, 40)
            table.add(value, expires)
            model[value] = max(expires, model.get(value, 0))
        now += rng.randint(5, 25)
        removed = set(table.prune(now))
        expired = {v for v, e in model.items() if e <= now}
        model = {v: e for v, e in model.items() if e > now}
        assert len(removed) == len(expired)
        assert len(table) == len(model)
        assert [v for v in values if v in table] == [v for v in values if v in model]
    now += 100
    table.prune(now)
    assert len(table) == 0 and not any(v in table for v in values)
    assert len(table._keys) == 16  # shrunk back once emptied
