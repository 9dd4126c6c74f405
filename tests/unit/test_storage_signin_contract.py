"""The sign-in half of the storage contract (`SignInStore`), on SQLite and on PostgreSQL: login
sessions, single-use codes redeemed atomically with the family they start, and consents.
The fixtures are the storage contract's own (tests/unit/test_storage_contract.py)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from auth_service.storage import AuthorizationCode, Credential, LoginSession, RedeemOutcome, RefreshRecord, SqlStore
from tests.unit.test_storage_contract import NOW, store, user_named

__all__ = ["store"]  # the backend-parametrised fixture, used by every test here

pytestmark = pytest.mark.anyio


async def _signed_in(store: SqlStore, name: str = "u1", session_id: str = "L1", cookie: str = "c" * 64) -> LoginSession:
    user = await user_named(store, name)
    _, head = await store.feed_head()
    session = LoginSession(id=session_id, sub=user.id, auth_time=NOW, expires_at=NOW + 3600)
    assert await store.start_login_session(session, cookie, Credential(user.password_hash, head))
    return session


def _code(session: LoginSession, sid: str = "F1", code_hash: str = "h" * 64) -> AuthorizationCode:
    return AuthorizationCode(
        code_hash=code_hash,
        client_id="app",
        redirect_uri="https://app.example/cb",
        code_challenge="x" * 43,
        nonce="n",
        scope="openid",
        audience="api",
        sub=session.sub,
        login_session=session.id,
        auth_time=session.auth_time,
        sid=sid,
        expires_at=NOW + 60,
    )


def _first(code: AuthorizationCode, jti: str = "R1") -> RefreshRecord:
    return RefreshRecord(
        jti=jti,
        sid=code.sid,
        sub=code.sub,
        client_id=code.client_id,
        scope=code.scope,
        issued_at=NOW,
        expires_at=NOW + 3600,
        used_at=None,
        family_revoked_at=None,
        audience=code.audience,
        login_session=code.login_session,
    )


async def test_a_login_session_is_found_by_its_cookie_until_it_ends_or_expires(store: SqlStore) -> None:
    session = await _signed_in(store)
    assert await store.login_session("c" * 64, NOW) == session
    assert await store.login_session("d" * 64, NOW) is None  # another browser's (or issuer's) cookie
    assert await store.login_session("c" * 64, NOW + 3600) is None  # expired
    assert await store.end_login_session(session.id, NOW, NOW + 900) == []  # no family yet: nothing to revoke
    assert await store.login_session("c" * 64, NOW) is None
    assert await store.end_login_session(session.id, NOW, NOW + 900) == []  # ending twice appends nothing


async def test_of_concurrent_exchanges_of_one_code_exactly_one_starts_a_family(store: SqlStore) -> None:
    session = await _signed_in(store)
    code = _code(session)
    await store.add_code(code)
    outcomes = await asyncio.gather(
        *(store.redeem_code(code.code_hash, _first(code, f"R{i}"), NOW, NOW + 900) for i in range(5))
    )
    assert outcomes.count(RedeemOutcome.REDEEMED) == 1
    # Every loser is a replay, which revoked the winner's family: a code is good once, and only once.
    assert outcomes.count(RedeemOutcome.REPLAYED) == 4
    assert [(e.kind, e.value) for e in await store.entries_after(0)] == [("sid", "F1")]  # appended once
    winner = next(f"R{i}" for i, o in enumerate(outcomes) if o is RedeemOutcome.REDEEMED)
    record = await store.refresh_record(winner)
    assert record is not None and record.family_revoked_at is not None and record.login_session == session.id


async def test_a_replayed_code_revokes_the_family_its_first_use_started(store: SqlStore) -> None:
    session = await _signed_in(store)
    code = _code(session)
    await store.add_code(code)
    assert await store.redeem_code(code.code_hash, _first(code), NOW, NOW + 900) is RedeemOutcome.REDEEMED
    assert (await store.refresh_record("R1")).family_revoked_at is None  # type: ignore[union-attr]
    assert await store.redeem_code(code.code_hash, _first(code, "R2"), NOW + 5, NOW + 900) is RedeemOutcome.REPLAYED
    assert (await store.refresh_record("R1")).family_revoked_at == NOW + 5  # type: ignore[union-attr]
    assert [(e.kind, e.value) for e in await store.entries_after(0)] == [("sid", "F1")]
    assert await store.refresh_record("R2") is None


async def test_an_expired_or_unknown_code_starts_nothing(store: SqlStore) -> None:
    session = await _signed_in(store)
    code = _code(session)
    await store.add_code(code)
    assert await store.redeem_code("u" * 64, _first(code), NOW, NOW + 900) is RedeemOutcome.UNKNOWN
    assert await store.redeem_code(code.code_hash, _first(code), NOW + 60, NOW + 900) is RedeemOutcome.EXPIRED
    assert await store.refresh_record("R1") is None


async def test_a_code_whose_session_ended_or_whose_user_was_revoked_starts_nothing(store: SqlStore) -> None:
    session = await _signed_in(store)
    ended = _code(session, sid="F1", code_hash="a" * 64)
    await store.add_code(ended)
    await store.end_login_session(session.id, NOW, NOW + 900)
    assert await store.redeem_code(ended.code_hash, _first(ended), NOW, NOW + 900) is RedeemOutcome.SESSION_ENDED
    other = await _signed_in(store, "u2", "L2", "e" * 64)
    revoked = _code(other, sid="F2", code_hash="b" * 64)
    await store.add_code(revoked)
    await store.revoke_subject(other.sub, NOW, NOW + 1, NOW + 900)  # a password change, a disable
    assert await store.login_session("e" * 64, NOW) is None  # the subject revocation ended the session
    assert (
        await store.redeem_code(revoked.code_hash, _first(revoked, "R2"), NOW, NOW + 900) is RedeemOutcome.SESSION_ENDED
    )


async def test_ending_a_login_session_revokes_every_apps_family_from_it(store: SqlStore) -> None:
    session = await _signed_in(store)
    for sid, code_hash in (("F1", "a" * 64), ("F2", "b" * 64)):
        code = _code(session, sid=sid, code_hash=code_hash)
        await store.add_code(code)
        assert await store.redeem_code(code_hash, _first(code, f"R-{sid}"), NOW, NOW + 900) is RedeemOutcome.REDEEMED
    assert await store.family_login_session("F2") == session.id
    entries = await store.end_login_session(session.id, NOW + 1, NOW + 900)
    assert sorted(e.value for e in entries) == ["F1", "F2"] and {e.kind for e in entries} == {"sid"}


async def test_signing_in_again_moves_the_sessions_apps_to_the_new_one(store: SqlStore) -> None:
    first = await _signed_in(store)
    code = _code(first)
    await store.add_code(code)
    await store.redeem_code(code.code_hash, _first(code), NOW, NOW + 900)
    user = await user_named(store, "u1")
    _, head = await store.feed_head()
    again = replace(first, id="L2", auth_time=NOW + 10)
    assert await store.start_login_session(again, "f" * 64, Credential(user.password_hash, head), replaces=first.id)
    assert await store.login_session("c" * 64, NOW + 10) is None and await store.family_login_session("F1") == "L2"
    assert [e.value for e in await store.end_login_session("L2", NOW + 11, NOW + 900)] == ["F1"]


async def test_consents_accumulate_per_user_and_client_until_revoked(store: SqlStore) -> None:
    user = await user_named(store, "u1")
    assert await store.consent(user.id, "third") is None
    await store.grant_consent(user.id, "third", "openid", NOW)
    await store.grant_consent(user.id, "third", "profile reports:read", NOW + 1)
    assert await store.consent(user.id, "third") == "openid profile reports:read"
    assert await store.consents(user.id) == [("third", "openid profile reports:read", NOW + 1)]
    assert await store.revoke_consent(user.id, "third") and not await store.revoke_consent(user.id, "third")
    assert await store.consent(user.id, "third") is None


async def test_pruning_keeps_a_used_code_long_enough_to_catch_a_late_replay(store: SqlStore) -> None:
    session = await _signed_in(store)
    code = _code(session)
    await store.add_code(code)
    await store.redeem_code(code.code_hash, _first(code), NOW, NOW + 900)
    assert await store.prune_sign_in(NOW + 120) == 0  # expired a minute ago: still remembered
    assert await store.redeem_code(code.code_hash, _first(code, "R2"), NOW + 120, NOW + 900) is RedeemOutcome.REPLAYED
    assert await store.prune_sign_in(NOW + 60 + 601) >= 1
    assert await store.authorization_code(code.code_hash) is None
