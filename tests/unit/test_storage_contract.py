"""One behavioural suite for every storage backend: each test runs on SQLite and on
PostgreSQL (a fresh database of its own)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import text

from auth_service.storage import Client, Conflict, Credential, RefreshRecord, RotateOutcome, SqlStore, User, open_store

NOW = 1_800_000_000


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlStore]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    s = await open_store(url)
    try:
        yield s
    finally:
        await s.close()


def refresh(
    jti: str, sid: str = "s1", sub: str = "u1", expires_at: int = NOW + 1000, issued_at: int = NOW
) -> RefreshRecord:
    return RefreshRecord(
        jti=jti,
        sid=sid,
        sub=sub,
        client_id="public",
        scope="a",
        issued_at=issued_at,
        expires_at=expires_at,
        used_at=None,
        family_revoked_at=None,
    )


async def user_named(store: SqlStore, name: str) -> User:
    return await store.user_by_name(name) or await store.add_user(name, f"hash-of-{name}", "a", NOW)


async def login(store: SqlStore, jti: str, sid: str = "s1", username: str = "u1", **record: int) -> str:
    """Start a family for `username` (created if need be) as a login that checked its hash
    just now; returns the user's sub."""
    user = await user_named(store, username)
    _, head = await store.feed_head()
    checked = Credential(user.password_hash, head)
    assert await store.start_family(refresh(jti, sid=sid, sub=user.id, **record), checked)
    return user.id


pytestmark = pytest.mark.anyio


async def test_usernames_are_unique_after_unicode_normalisation_and_casefolding(store: SqlStore) -> None:
    user = await store.add_user("Alice", "hash", "a b", NOW)
    with pytest.raises(Conflict):
        await store.add_user("ＡＬＩＣＥ", "hash2", "", NOW)  # noqa: RUF001 (fullwidth capitals, on purpose)
    assert (await store.user_by_name("alice")) == user
    assert (await store.user_by_id(user.id)) == user
    assert user.id != "Alice" and len(user.id) >= 20  # sub is opaque and random


async def test_users_are_listed_in_name_order_a_page_at_a_time(store: SqlStore) -> None:
    for name in ("carol", "Alice", "dave", "bob"):
        await store.add_user(name, f"hash-of-{name}", "a", NOW)
    first = await store.list_users(limit=2)
    assert [u.username for u in first] == ["Alice", "bob"]  # compared form: 'Alice' sorts as 'alice'
    assert first[0] == await store.user_by_name("alice")
    assert [u.username for u in await store.list_users(after="bob", limit=2)] == ["carol", "dave"]
    assert [u.username for u in await store.list_users(after="BOB")] == ["carol", "dave"]  # after's compared form
    assert [u.username for u in await store.list_users(after="bz")] == ["carol", "dave"]  # need not exist
    assert await store.list_users(after="dave") == []


async def test_a_page_of_users_is_at_most_a_thousand_and_never_negative(store: SqlStore) -> None:
    from sqlalchemy import insert

    from auth_service.storage.tables import users

    rows = [
        {
            "id": f"id-{i:04}",
            "username": f"user{i:04}",
            "username_key": f"user{i:04}",
            "password_hash": "h",
            "scope": "",
            "created_at": NOW,
            "password_changed_at": NOW,
        }
        for i in range(1001)
    ]
    async with store._writer.begin() as conn:  # one statement: 1001 add_user calls would be slow
        await conn.execute(insert(users), rows)
    assert len(await store.list_users(limit=5000)) == 1000
    assert await store.list_users(limit=-1) == []  # SQLite would read LIMIT -1 as no limit
    assert [u.username for u in await store.list_users(after="user0999")] == ["user1000"]


async def test_set_scope_replaces_one_users_scope(store: SqlStore) -> None:
    alice = await store.add_user("alice", "h", "a b", NOW)
    bob = await store.add_user("bob", "h", "a b", NOW)
    assert await store.set_scope(alice.id, "a") is True
    assert (await store.user_by_id(alice.id)).scope == "a"  # type: ignore[union-attr]
    assert (await store.user_by_id(bob.id)).scope == "a b"  # type: ignore[union-attr]
    assert await store.set_scope("no-such-sub", "a") is False


async def test_clients_are_unique_by_id_and_read_back_as_registered(store: SqlStore) -> None:
    svc = Client(
        "svc",
        "h",
        "x",
        grant_types=("client_credentials",),
        audiences=("https://api.example",),
        redirect_uris=("https://app.example/cb", "com.example.app:/cb"),
        name="Svc",
        first_party=True,
        created_at=NOW,
    )
    await store.add_client(svc)
    with pytest.raises(Conflict):
        await store.add_client(replace(svc, scope="y"))
    assert await store.client("svc") == svc
    assert await store.client("other") is None


async def test_a_new_database_has_no_client_so_no_client_has_the_password_grant(store: SqlStore) -> None:
    assert await store.clients() == []  # revision 0005 drops 0004's default `public` while no user exists


async def test_a_database_in_use_keeps_its_default_public_client_through_the_upgrade(tmp_path: Path) -> None:
    from alembic import command

    from auth_service.storage.schema import _config
    from auth_service.storage.sqlite import engine

    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    old = engine(url)
    async with old.begin() as conn:  # the schema of the release before sign-in, with a user
        await conn.run_sync(lambda sync: command.upgrade(_config(sync), "0004"))
        await conn.execute(text("INSERT INTO users VALUES ('u1', 'alice', 'alice', 'h', '', 0, 0, NULL)"))
    await old.dispose()
    upgraded = await open_store(url)  # SQLite migrates itself to the head
    try:
        default = await upgraded.client("public")
        assert default is not None and default.public and default.scope is None
        assert default.grant_types == ("password", "refresh_token")  # its callers go on working
    finally:
        await upgraded.close()


async def test_a_rotated_secret_replaces_the_old_and_a_public_client_has_none_to_rotate(store: SqlStore) -> None:
    await store.add_client(Client("svc", "old-hash", ""))
    await store.add_client(Client("public", None, None, ("password",)))
    assert await store.set_client_secret("svc", "new-hash")
    assert (await store.client("svc")).secret_hash == "new-hash"  # type: ignore[union-attr]
    assert not await store.set_client_secret("public", "a-hash")
    assert (await store.client("public")).secret_hash is None  # type: ignore[union-attr]
    assert not await store.set_client_secret("nobody", "a-hash")


async def test_removing_a_client_revokes_its_live_sessions_and_its_own_tokens_in_one_step(store: SqlStore) -> None:
    await store.add_client(Client("web", None, "a", grant_types=("password",)))
    user = await store.add_user("carol", "hash", "a", NOW)
    for sid in ("s1", "s2"):
        record = replace(refresh(f"j-{sid}", sid=sid, sub=user.id), client_id="web", audience="https://api.example")
        assert await store.start_family(record, Credential("hash", 0))
    assert (await store.refresh_record("j-s1")).audience == "https://api.example"  # type: ignore[union-attr]
    await store.revoke_family("s2", NOW, NOW + 100)  # already revoked: no second entry
    _, head = await store.feed_head()
    entries = await store.remove_client("web", NOW, NOW + 100)
    assert [(e.kind, e.value) for e in entries or []] == [("sid", "s1"), ("sub", "web")]
    assert [e.seq for e in await store.entries_after(head)] == [e.seq for e in entries or []]
    assert await store.client("web") is None
    assert await store.remove_client("web", NOW, NOW + 100) is None


async def test_of_concurrent_rotations_of_one_token_exactly_one_wins(store: SqlStore) -> None:
    await login(store, "r0")
    outcomes = await asyncio.gather(*[store.rotate("r0", refresh(f"n{i}"), NOW, NOW + 60) for i in range(20)])
    assert outcomes.count(RotateOutcome.ROTATED) == 1
    assert RotateOutcome.REUSED in outcomes  # the losers are replays: the family is revoked


async def test_presenting_a_retired_token_revokes_the_family_and_appends_a_sid_entry(store: SqlStore) -> None:
    await login(store, "r0")
    assert await store.rotate("r0", refresh("r1"), NOW, NOW + 60) is RotateOutcome.ROTATED
    assert await store.rotate("r0", refresh("r2"), NOW, NOW + 60) is RotateOutcome.REUSED
    assert await store.rotate("r1", refresh("r3"), NOW, NOW + 60) is RotateOutcome.REVOKED
    entries = await store.entries_after(0)
    assert [(e.kind, e.value, e.expires_at) for e in entries] == [("sid", "s1", NOW + 60)]


async def test_within_the_reuse_grace_concurrent_rotations_refuse_the_losers_without_revoking(store: SqlStore) -> None:
    await login(store, "r0")
    outcomes = await asyncio.gather(*[store.rotate("r0", refresh(f"n{i}"), NOW, NOW + 60, grace=5) for i in range(10)])
    assert outcomes.count(RotateOutcome.ROTATED) == 1
    assert set(outcomes) == {RotateOutcome.ROTATED, RotateOutcome.JUST_RETIRED}
    assert await store.entries_after(0) == [], "nothing revoked"
    winner = f"n{outcomes.index(RotateOutcome.ROTATED)}"
    assert await store.rotate(winner, refresh("next"), NOW + 1, NOW + 60, grace=5) is RotateOutcome.ROTATED
    # Past the grace, the same replay is theft again: the family goes.
    assert await store.rotate("r0", refresh("late"), NOW + 5, NOW + 60, grace=5) is RotateOutcome.REUSED
    assert [e.kind for e in await store.entries_after(0)] == ["sid"]


async def test_expired_and_unknown_refresh_tokens_do_not_rotate(store: SqlStore) -> None:
    await login(store, "old", expires_at=NOW - 1)
    assert await store.rotate("old", refresh("n"), NOW, NOW + 60) is RotateOutcome.EXPIRED
    assert await store.rotate("never-issued", refresh("n"), NOW, NOW + 60) is RotateOutcome.UNKNOWN


async def test_feed_seq_numbers_are_consecutive_and_the_head_follows(store: SqlStore) -> None:
    feed_id, head = await store.feed_head()
    assert head == 0 and feed_id
    await store.revoke_jti("j1", NOW + 10, NOW)
    await store.revoke_family("s9", NOW, NOW + 10)
    await store.revoke_subject("u1", NOW, NOW + 1, NOW + 20)
    assert [e.seq for e in await store.entries_after(0)] == [1, 2, 3]
    assert [e.seq for e in await store.entries_after(2)] == [3]
    assert await store.feed_head() == (feed_id, 3)


async def test_revoking_twice_appends_once(store: SqlStore) -> None:
    first = await store.revoke_jti("j1", NOW + 10, NOW)
    assert await store.revoke_jti("j1", NOW + 10, NOW) == first
    await login(store, "r0")
    assert (await store.revoke_family("s1", NOW, NOW + 10)).entry is not None
    assert (await store.revoke_family("s1", NOW, NOW + 10)).entry is None
    assert len(await store.entries_after(0)) == 2


async def test_revoking_a_subject_revokes_its_families_and_records_before(store: SqlStore) -> None:
    u1 = await login(store, "r0", sid="s1", username="u1")
    u2 = await login(store, "x0", sid="s2", username="u2")
    await store.revoke_subject(u1, NOW, NOW + 1, NOW + 100)
    assert (await store.refresh_record("r0")).family_revoked_at == NOW  # type: ignore[union-attr]
    assert (await store.refresh_record("x0")).family_revoked_at is None  # type: ignore[union-attr]
    assert await store.revoked_before(u1) == NOW + 1
    assert await store.revoked_before(u2) is None


async def test_is_revoked_matches_by_jti_sid_and_subject_issued_before(store: SqlStore) -> None:
    await store.revoke_jti("j1", NOW + 100, NOW)
    await store.revoke_family("s1", NOW, NOW + 100)
    await store.revoke_subject("u9", NOW, NOW + 1, NOW + 100)

    def check(jti: str = "j", sid: str | None = "s", sub: str = "u", iat: int = NOW) -> object:
        return store.is_revoked(jti=jti, sid=sid, sub=sub, iat=iat, now=NOW)

    assert await check(jti="j1") and await check(sid="s1") and await check(sub="u9", iat=NOW)
    assert not await check(sub="u9", iat=NOW + 1)  # issued at `before`: a new login, not revoked
    assert not await check()
    assert not await store.is_revoked(jti="j1", sid=None, sub="u", iat=NOW, now=NOW + 100)  # expired entry


async def test_pruning_removes_exactly_the_entries_and_tokens_past_expiry(store: SqlStore) -> None:
    await store.revoke_jti("gone", NOW + 5, NOW)
    await store.revoke_jti("kept", NOW + 50, NOW)
    await login(store, "r-old", sid="s-old", expires_at=NOW + 5)
    await login(store, "r-new", sid="s-new", expires_at=NOW + 50)
    assert await store.prune_revocations(NOW + 10) == 1
    assert [e.value for e in await store.entries_after(0)] == ["kept"]
    await store.prune_families(NOW + 10)
    assert await store.refresh_record("r-old") is None
    assert await store.refresh_record("r-new") is not None
    assert (await store.feed_head())[1] == 2  # the head never goes back


async def test_the_live_entry_count_leaves_out_expired_entries_not_yet_pruned(store: SqlStore) -> None:
    assert await store.count_revocations(NOW) == 0
    await store.revoke_jti("short", NOW + 5, NOW)
    await store.revoke_family("s1", NOW, NOW + 50)
    await store.revoke_subject("u1", NOW, NOW + 1, NOW + 50)
    assert await store.count_revocations(NOW) == 3
    assert await store.count_revocations(NOW + 5) == 2  # expires_at passed: no longer live
    assert await store.count_revocations(NOW + 50) == 0


async def test_database_errors_do_not_quote_stored_values(store: SqlStore) -> None:
    from sqlalchemy import insert
    from sqlalchemy.exc import IntegrityError

    from auth_service.storage.tables import users

    await store.add_user("dave", "secret-hash-value", "", NOW)
    with pytest.raises(IntegrityError) as failed:
        async with store._writer.begin() as conn:  # a raw insert that violates uniqueness
            await conn.execute(
                insert(users).values(
                    id="x",
                    username="dave",
                    username_key="dave",
                    password_hash="another-secret-hash",
                    scope="",
                    created_at=NOW,
                    password_changed_at=NOW,
                )
            )
    assert "another-secret-hash" not in str(failed.value)


async def test_a_login_whose_password_changed_during_its_check_stores_no_family(store: SqlStore) -> None:
    user = await user_named(store, "carol")
    _, head = await store.feed_head()
    checked = Credential(user.password_hash, head)  # what a login verified, before its hash finished
    await store.set_password_hash(user.id, "new-hash", changed_at=NOW + 1)
    assert await store.start_family(refresh("r0", sub=user.id), checked) is False
    assert await store.refresh_record("r0") is None
    assert await store.start_family(refresh("r1", sub=user.id), Credential("new-hash", head)) is True


async def test_a_login_checked_before_a_subject_revocation_stores_no_family(store: SqlStore) -> None:
    user = await user_named(store, "carol")
    _, head = await store.feed_head()
    await store.revoke_subject(user.id, NOW, NOW + 1, NOW + 100)
    assert await store.start_family(refresh("r0", sub=user.id), Credential(user.password_hash, head)) is False
    # A login that began after the revocation (it saw the entry) stands, in the same second too,
    # and entries of other kinds or subjects void no login.
    _, after = await store.feed_head()
    await store.revoke_jti("j1", NOW + 10, NOW)
    await store.revoke_subject("someone-else", NOW, NOW + 1, NOW + 100)
    assert (
        await store.start_family(refresh("r1", sub=user.id, issued_at=NOW + 1), Credential(user.password_hash, after))
        is True
    )


async def test_disabled_and_removed_users_start_no_family(store: SqlStore) -> None:
    user = await user_named(store, "carol")
    _, head = await store.feed_head()
    checked = Credential(user.password_hash, head)
    assert await store.set_disabled(user.id, NOW) is True
    assert (await store.user_by_id(user.id)).disabled_at == NOW  # type: ignore[union-attr]
    assert await store.start_family(refresh("r0", sub=user.id), checked) is False
    assert await store.set_disabled(user.id, None) is True
    assert await store.start_family(refresh("r0", sub=user.id), checked) is True
    assert await store.remove_user(user.id) is True
    assert await store.user_by_id(user.id) is None
    assert await store.start_family(refresh("r1", sid="s2", sub=user.id), checked) is False
    assert await store.remove_user(user.id) is False
    assert await store.set_disabled(user.id, NOW) is False


async def test_a_rehash_does_not_overwrite_a_changed_password(store: SqlStore) -> None:
    user = await user_named(store, "carol")
    await store.set_password_hash(user.id, "changed", changed_at=NOW + 1)
    await store.set_password_hash(user.id, "rehash-of-old", changed_at=None, replaces=user.password_hash)
    assert (await store.user_by_id(user.id)).password_hash == "changed"  # type: ignore[union-attr]


async def test_a_family_that_began_before_a_subject_revocation_never_rotates(store: SqlStore) -> None:
    sub = await login(store, "r0")
    await store.revoke_subject(sub, NOW, NOW + 5, NOW + 100)
    # A family stored after the revocation yet begun before its `before` (an issuer whose
    # clock is behind, or one that lifted an old login over the entry) must not rotate.
    user = await user_named(store, "u1")
    _, head = await store.feed_head()
    assert await store.start_family(refresh("late", sid="s2", sub=sub), Credential(user.password_hash, head))
    assert await store.rotate("late", refresh("n", sid="s2", sub=sub), NOW + 1, NOW + 60) is RotateOutcome.REVOKED
    assert (await store.refresh_record("late")).family_revoked_at == NOW + 1  # type: ignore[union-attr]
    assert [(e.kind, e.value) for e in await store.entries_after(0)][-1] == ("sid", "s2")
    assert await store.refresh_record("n") is None


async def test_refresh_times_are_a_family_s_issue_times_after_a_moment(store: SqlStore) -> None:
    await login(store, "r0", issued_at=NOW)
    assert await store.rotate("r0", refresh("r1", issued_at=NOW + 10), NOW + 10, NOW + 60) is RotateOutcome.ROTATED
    assert await store.rotate("r1", refresh("r2", issued_at=NOW + 20), NOW + 20, NOW + 60) is RotateOutcome.ROTATED
    assert await store.refresh_times("s1", NOW) == [NOW + 10, NOW + 20]
    assert await store.refresh_times("s1", NOW - 1) == [NOW, NOW + 10, NOW + 20]
    assert await store.refresh_times("other", NOW - 1) == []
    assert (await store.refresh_record("r2")).session_started_at == NOW  # type: ignore[union-attr]


async def test_logins_racing_a_subject_revocation_leave_no_unrevoked_family(store: SqlStore) -> None:
    user = await user_named(store, "carol")
    _, head = await store.feed_head()
    checked = Credential(user.password_hash, head)  # every login's check began before the revocation
    logins = [store.start_family(refresh(f"r{i}", sid=f"s{i}", sub=user.id), checked) for i in range(20)]
    await asyncio.gather(*logins[:10], store.revoke_subject(user.id, NOW, NOW + 1, NOW + 100), *logins[10:])
    records = [await store.refresh_record(f"r{i}") for i in range(20)]
    assert all(r is None or r.family_revoked_at is not None for r in records)
