"""The user lifecycle through `Directory`, in process: a real SQLite store, a real Revoker
and hasher, a fixed clock."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from auth_service.directory import Directory, Invalid, NotFound, user_view
from auth_service.passwords import PasswordHasher
from auth_service.revocation import RevocationFeed, Revoker
from auth_service.storage import Conflict, Credential, RefreshRecord, SqlStore, User, open_store

NOW = 1_800_000_000.75  # the fake clock; stored times are its whole seconds
PASSWORD = "correct horse battery staple"

pytestmark = pytest.mark.anyio


@dataclass
class World:
    directory: Directory
    store: SqlStore
    hasher: PasswordHasher


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}")
    hasher = PasswordHasher(1)
    revoker = Revoker(store, RevocationFeed(store, heartbeat=1), access_ttl=300, leeway=5)
    try:
        yield World(Directory(store, revoker, hasher, clock=lambda: NOW), store, hasher)
    finally:
        hasher.close()
        await store.close()


async def add(world: World, name: str = "alice", scope: str = "profile reports:read") -> User:
    return await world.directory.add_user(name, PASSWORD, scope, actor="test")


async def start_session(world: World, user: User, sid: str = "s1") -> None:
    _, head = await world.store.feed_head()
    record = RefreshRecord(
        jti=f"{sid}-r0",
        sid=sid,
        sub=user.id,
        client_id="public",
        scope=user.scope,
        issued_at=int(NOW),
        expires_at=int(NOW) + 1000,
        used_at=None,
        family_revoked_at=None,
    )
    assert await world.store.start_family(record, Credential(user.password_hash, head))


async def sub_entries(world: World) -> list[str]:
    return [e.value for e in await world.store.entries_after(0) if e.kind == "sub"]


async def test_add_user_stores_a_hash_of_the_password_the_scope_and_the_clocks_time(world: World) -> None:
    user = await add(world)
    assert user == await world.directory.user("ALICE")  # looked up in the compared form
    assert user.scope == "profile reports:read" and user.password_changed_at == int(NOW)
    assert user.password_hash != PASSWORD and await world.hasher.verify(PASSWORD, user.password_hash)


async def test_a_taken_name_is_a_conflict(world: World) -> None:
    await add(world, "alice")
    with pytest.raises(Conflict):
        await add(world, "Alice")


async def test_users_come_in_username_order_a_page_at_a_time(world: World) -> None:
    for name in ("carol", "alice", "bob"):
        await add(world, name)
    first = await world.directory.users(limit=2)
    assert [u.username for u in first] == ["alice", "bob"]
    assert [u.username for u in await world.directory.users(after=first[-1].username)] == ["carol"]
    for limit in (0, 1001):
        with pytest.raises(Invalid, match="limit"):
            await world.directory.users(limit=limit)


async def test_set_scope_changes_what_the_user_has(world: World) -> None:
    await add(world, scope="profile reports:read")
    changed = await world.directory.set_scope("alice", "profile", actor="test")
    assert changed.scope == "profile"
    assert (await world.directory.user("alice")).scope == "profile"


async def test_set_password_stores_the_new_hash_and_revokes_the_subjects_tokens(world: World) -> None:
    user = await add(world)
    await start_session(world, user)
    changed = await world.directory.set_password("alice", "a brand new passphrase", actor="test")
    stored = await world.directory.user("alice")
    assert changed == stored and stored.password_changed_at == int(NOW)
    assert await world.hasher.verify("a brand new passphrase", stored.password_hash)
    assert not await world.hasher.verify(PASSWORD, stored.password_hash)
    assert await sub_entries(world) == [user.id]
    assert (await world.store.refresh_record("s1-r0")).family_revoked_at is not None  # type: ignore[union-attr]


async def test_disable_ends_every_session_and_enable_lets_the_user_back_without_revoking(world: World) -> None:
    user = await add(world)
    await start_session(world, user, "s1")
    await start_session(world, user, "s2")
    disabled = await world.directory.disable("alice", actor="test")
    assert disabled.disabled_at == int(NOW) == (await world.directory.user("alice")).disabled_at
    assert await sub_entries(world) == [user.id]
    for sid in ("s1", "s2"):
        assert (await world.store.refresh_record(f"{sid}-r0")).family_revoked_at is not None  # type: ignore[union-attr]
    enabled = await world.directory.enable("alice", actor="test")
    assert enabled.disabled_at is None and (await world.directory.user("alice")).disabled_at is None
    assert await sub_entries(world) == [user.id]  # nothing more appended


async def test_delete_removes_the_user_and_appends_a_sub_entry(world: World) -> None:
    user = await add(world)
    other = await add(world, "bob")
    await world.directory.delete("alice", actor="test")
    with pytest.raises(NotFound):
        await world.directory.user("alice")
    assert await sub_entries(world) == [user.id]
    assert await world.directory.users() == [other]


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.user("nobody"),
        lambda d: d.set_scope("nobody", "profile", actor="test"),
        lambda d: d.set_password("nobody", PASSWORD, actor="test"),
        lambda d: d.disable("nobody", actor="test"),
        lambda d: d.enable("nobody", actor="test"),
        lambda d: d.delete("nobody", actor="test"),
    ],
    ids=["user", "set_scope", "set_password", "disable", "enable", "delete"],
)
async def test_an_unknown_user_is_not_found_and_nothing_is_revoked(
    world: World, change: Callable[[Directory], Awaitable[object]]
) -> None:
    await add(world)
    with pytest.raises(NotFound, match="no user 'nobody'"):
        await change(world.directory)
    assert await sub_entries(world) == []


TOO_LONG_PASSWORD = "p" * 1025


@pytest.mark.parametrize(
    "username, password, scope, field",
    [
        ("", PASSWORD, "", "username"),
        ("a" * 257, PASSWORD, "", "username"),
        ("ali\x00ce", PASSWORD, "", "username"),
        ("ali\nce", PASSWORD, "", "username"),
        ("alice", "7 chars", "", "password"),
        ("alice", TOO_LONG_PASSWORD, "", "password"),
        ("alice", PASSWORD, "profile  reports:read", "scope"),  # an empty token between two spaces
        ("alice", PASSWORD, " profile", "scope"),
        ("alice", PASSWORD, 'say"hi"', "scope"),  # '"' is outside RFC 6749 section 3.3's set
        ("alice", PASSWORD, "caf\u00e9", "scope"),
    ],
    ids=[
        "empty-name",
        "long-name",
        "nul-in-name",
        "newline-in-name",
        "short-password",
        "long-password",
        "double-space-scope",
        "leading-space-scope",
        "quote-in-scope",
        "non-ascii-scope",
    ],
)
async def test_invalid_input_is_refused_naming_the_field_never_quoting_the_password(
    world: World, username: str, password: str, scope: str, field: str
) -> None:
    with pytest.raises(Invalid, match=f"^{field}") as refused:
        await world.directory.add_user(username, password, scope, actor="test")
    assert password not in str(refused.value)
    assert await world.directory.users() == []


async def test_set_scope_and_set_password_refuse_invalid_input_and_change_nothing(world: World) -> None:
    user = await add(world)
    with pytest.raises(Invalid, match=r"^scope"):
        await world.directory.set_scope("alice", "a  b", actor="test")
    with pytest.raises(Invalid, match=r"^password") as refused:
        await world.directory.set_password("alice", "s3cr3t!", actor="test")
    assert "s3cr3t!" not in str(refused.value)
    assert await world.directory.user("alice") == user
    assert await sub_entries(world) == []


async def test_every_change_logs_one_security_event_with_sub_and_actor_and_no_name_or_password(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="auth_service.security")
    directory = world.directory
    user = await directory.add_user("alice", PASSWORD, "profile", actor="admin-client")
    await directory.set_scope("alice", "", actor="admin-client")
    await directory.set_password("alice", "a brand new passphrase", actor="admin-client")
    await directory.disable("alice", actor="admin-client")
    await directory.enable("alice", actor="admin-client")
    await directory.delete("alice", actor="admin-client")
    events = [r for r in caplog.records if r.name == "auth_service.security" and r.getMessage().startswith("user_")]
    assert [r.getMessage() for r in events] == [
        "user_added",
        "user_scope_set",
        "user_password_set",
        "user_disabled",
        "user_enabled",
        "user_deleted",
    ]
    for record in events:
        assert record.sub == user.id and record.actor == "admin-client"  # type: ignore[attr-defined]
    logged = " ".join(str(v) for r in caplog.records for v in vars(r).values())
    assert "alice" not in logged and PASSWORD not in logged and "a brand new passphrase" not in logged


async def test_a_user_is_shown_without_its_password_hash(world: World) -> None:
    user = await add(world)
    view = user_view(user)
    assert view == {
        "username": "alice",
        "sub": user.id,
        "scope": "profile reports:read",
        "disabled": False,
        "disabled_at": None,
        "password_changed_at": int(NOW),
        "name": None,
        "email": None,
        "email_verified": False,
    }
    assert user_view(await world.directory.disable("alice", actor="test"))["disabled"] is True
    assert user.password_hash not in str(view)
