"""Storage contracts, one per concern. Handlers depend on these, never on a database.

Every backend implements all four and passes the same behavioural suite
(tests/unit/test_storage_contract.py). Times are integer epoch seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol


class Conflict(Exception):
    """The name is taken (a user or client that already exists)."""


@dataclass(frozen=True, slots=True)
class User:
    id: str  # the `sub`: opaque, random, stable
    username: str
    password_hash: str
    scope: str
    password_changed_at: int
    disabled_at: int | None = None  # set: the user can neither log in nor refresh
    name: str | None = None  # OpenID Connect `name` (the `profile` scope)
    email: str | None = None  # OpenID Connect `email` (the `email` scope)
    email_verified: bool = False


@dataclass(frozen=True, slots=True)
class Client:
    """A registered client (RFC 6749 section 2): who may ask for tokens, and for what."""

    client_id: str
    secret_hash: str | None  # None: a public client (no secret; PKCE in the browser flows)
    scope: str | None  # the scopes its tokens may carry; None: any the user holds (never for itself)
    grant_types: tuple[str, ...] = ()
    redirect_uris: tuple[str, ...] = ()  # exact strings, compared as such
    audiences: tuple[str, ...] = ()  # RFC 8707 resources it may ask for; empty: AUTH_AUDIENCE
    name: str = ""
    first_party: bool = False  # ours (the sign-in page asks no consent)
    created_at: int = 0
    post_logout_redirect_uris: tuple[str, ...] = ()  # RP-initiated logout returns only to these

    @property
    def public(self) -> bool:
        return self.secret_hash is None


@dataclass(frozen=True, slots=True)
class RefreshRecord:
    jti: str
    sid: str
    sub: str
    client_id: str
    scope: str
    issued_at: int
    expires_at: int
    used_at: int | None
    family_revoked_at: int | None
    # When the family (the login session) began; filled in when read, ignored on write
    # (a new family begins at its first token's issued_at).
    session_started_at: int | None = None
    audience: str | None = None  # the family's: the `aud` of its access tokens (None: AUTH_AUDIENCE)
    login_session: str | None = None  # the browser login session it came from (None: a password login)


@dataclass(frozen=True, slots=True)
class Credential:
    """What a login checked: the stored hash it verified, and the feed head when the check
    began. Its session starts only if both still hold when the family is stored."""

    password_hash: str
    feed_head: int


@dataclass(frozen=True, slots=True)
class RevocationEntry:
    seq: int
    kind: str  # "jti" | "sid" | "sub"
    value: str
    before: int | None  # only for kind == "sub": tokens with iat < before are revoked
    expires_at: int

    def as_json(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "kind": self.kind,
            "value": self.value,
            "before": self.before,
            "expires_at": self.expires_at,
        }


@dataclass(frozen=True, slots=True)
class LoginSession:
    """A person signed in at the hosted login page, in one browser (the cookie names it)."""

    id: str
    sub: str
    auth_time: int  # when the password was checked (OpenID Connect `auth_time`)
    expires_at: int


@dataclass(frozen=True, slots=True)
class AuthorizationCode:
    """What `/authorize` checked, bound to a code (stored by its hash, used once)."""

    code_hash: str
    client_id: str
    redirect_uri: str
    code_challenge: str  # S256 of the client's code_verifier (RFC 7636)
    nonce: str | None
    scope: str
    audience: str
    sub: str
    login_session: str
    auth_time: int
    sid: str  # of the refresh family its exchange starts
    expires_at: int
    used_at: int | None = None


class RedeemOutcome(Enum):
    REDEEMED = "redeemed"  # marked used and its family stored
    REPLAYED = "already used"  # used before: what its first use issued is now revoked
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    SESSION_ENDED = "session ended"  # the login session ended, or its user changed, before the exchange


class RotateOutcome(Enum):
    ROTATED = "rotated"  # the old token is now retired, the new one stored
    REUSED = "reused"  # the old token was already retired: the family is now revoked
    JUST_RETIRED = "just retired"  # retired within the reuse grace: refused, the family stands
    UNKNOWN = "unknown"  # no such token (never issued here, or pruned)
    REVOKED = "revoked"  # the family was revoked earlier (logout, reuse, password change)
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Revoked:
    """What a family revocation appended to the feed (None when it was revoked already)."""

    entry: RevocationEntry | None


class UserStore(Protocol):
    async def add_user(self, username: str, password_hash: str, scope: str, now: int) -> User:
        """Create a user with a new random id. Raises Conflict if the username is taken
        (compared after NFKC + casefold, so 'Alice' and 'ALICE' are one user)."""

    async def user_by_name(self, username: str) -> User | None: ...

    async def user_by_id(self, sub: str) -> User | None: ...

    async def set_password_hash(
        self, sub: str, password_hash: str, changed_at: int | None, *, replaces: str | None = None
    ) -> None:
        """Store a new hash. `changed_at` is set for a password change, None for a rehash
        of the same password with new parameters. With `replaces`, the hash is stored only
        if the current one is still that (a rehash never undoes a password change)."""

    async def list_users(self, *, after: str | None = None, limit: int = 100) -> list[User]:
        """Users in the order of their compared names (NFKC + casefold), at most `limit`
        of them (capped at 1000). With `after`, only those whose name sorts after it: the
        last username of one page asks for the next, and a user added or removed between
        pages neither shifts nor repeats the rest."""

    async def set_scope(self, sub: str, scope: str) -> bool:
        """Replace what the user may be granted; False when there is no such user."""

    async def set_profile(self, sub: str, *, name: str | None, email: str | None, email_verified: bool) -> bool:
        """Replace the user's OpenID Connect claims; False when there is no such user."""

    async def set_disabled(self, sub: str, disabled_at: int | None) -> bool:
        """Disable (a time) or enable (None) a user; False when there is no such user."""

    async def remove_user(self, sub: str) -> bool:
        """Delete the user; False when there is no such user."""


class ClientStore(Protocol):
    async def add_client(self, client: Client) -> Client:
        """Register `client` as given. Raises Conflict if the id is taken."""

    async def client(self, client_id: str) -> Client | None: ...

    async def clients(self) -> list[Client]:
        """Every registered client, by id."""

    async def set_client_secret(self, client_id: str, secret_hash: str) -> bool:
        """Replace a confidential client's secret (the old one stops working at once);
        False when there is no such confidential client."""

    async def remove_client(self, client_id: str, now: int, revocation_expires_at: int) -> list[RevocationEntry] | None:
        """Delete the client and, in the same transaction, revoke each of its live refresh
        families (a `sid` entry each) and its own tokens (a `sub` entry for the client id,
        `before` = now + 1). The entries appended; None when there is no such client."""


class FamilyStore(Protocol):
    """Refresh families (sid = one login session) and their refresh tokens (by jti)."""

    async def start_family(self, record: RefreshRecord, checked: Credential) -> bool:
        """Store a new family and its first refresh token, in one transaction with a check
        that the login still stands: the user exists, is enabled, still has the password
        hash `checked` verified, and no `sub` entry for it was appended after
        `checked.feed_head`. False (nothing stored) when it does not stand. Serialised
        with `revoke_subject` and password changes of the same user."""

    async def refresh_record(self, jti: str) -> RefreshRecord | None: ...

    async def rotate(
        self, old_jti: str, new: RefreshRecord, now: int, revocation_expires_at: int, *, grace: int = 0
    ) -> RotateOutcome:
        """Atomically retire `old_jti` and store `new` in its family.

        Exactly one of any number of concurrent callers with the same `old_jti` gets
        ROTATED. A token already retired means replay: the family is revoked and a `sid`
        entry (expiring at `revocation_expires_at`) is appended to the feed, in the same
        transaction, and REUSED is returned; unless it was retired less than `grace`
        seconds before `now` (two tabs refreshing at once): then nothing changes and
        JUST_RETIRED is returned. A family that began before a `sub` entry's
        `before` for its subject is revoked the same way and REVOKED returned."""

    async def refresh_times(self, sid: str, since: int) -> list[int]:
        """`issued_at` of the family's refresh tokens issued after `since`, oldest first."""

    async def revoke_family(self, sid: str, now: int, revocation_expires_at: int) -> Revoked:
        """Revoke the family and append a `sid` entry to the feed, atomically; idempotent."""

    async def revoke_subject(self, sub: str, now: int, before: int, revocation_expires_at: int) -> Revoked:
        """Revoke every family of `sub` and append a `sub` + `before` entry, atomically
        (and after any `start_family` of the same user in flight)."""

    async def prune_families(self, now: int) -> int:
        """Delete refresh tokens and families past their expiry; returns rows removed."""


class RevocationStore(Protocol):
    """The revocation list as an ordered feed with consecutive `seq` numbers."""

    async def revoke_jti(self, jti: str, expires_at: int, now: int) -> RevocationEntry:
        """Append a `jti` entry (or return the live one already there)."""

    async def feed_head(self) -> tuple[str, int]:
        """(feed id, seq of the newest entry; 0 when empty)."""

    async def entries_after(self, after: int, limit: int | None = None) -> list[RevocationEntry]:
        """Live entries with seq > after, in seq order."""

    async def prune_revocations(self, now: int) -> int:
        """Delete entries whose expires_at has passed; returns how many."""

    async def is_revoked(self, *, jti: str, sid: str | None, sub: str, iat: int, now: int) -> bool:
        """Whether a live entry matches an access token with these claims."""

    async def revoked_before(self, sub: str) -> int | None:
        """The latest live `before` for `sub` (so new tokens are not minted into it)."""

    async def count_revocations(self, now: int) -> int:
        """How many entries are live at `now` (the revocation list size, for metrics)."""


class SignInStore(Protocol):
    """The browser sign-in: login sessions, authorization codes, remembered consents."""

    async def start_login_session(
        self, session: LoginSession, cookie_hash: str, checked: Credential, *, replaces: str | None = None
    ) -> bool:
        """Store a login session if the password check still stands (as `start_family`). With
        `replaces`, the same user's earlier session in this browser ends and its families
        belong to the new one (a sign-in again must not orphan them)."""

    async def login_session(self, cookie_hash: str, now: int) -> LoginSession | None:
        """The live session of this cookie: not ended or expired, and its user still enabled,
        with no `sub` entry revoking what they had at `auth_time`."""

    async def end_login_session(self, session_id: str, now: int, revocation_expires_at: int) -> list[RevocationEntry]:
        """End the session and revoke, in the same transaction, every live family it started
        (a `sid` entry each). The entries appended; none when it had ended already."""

    async def family_login_session(self, sid: str) -> str | None:
        """The login session a refresh family came from."""

    async def add_code(self, code: AuthorizationCode) -> None: ...

    async def authorization_code(self, code_hash: str) -> AuthorizationCode | None: ...

    async def redeem_code(
        self, code_hash: str, first: RefreshRecord, now: int, revocation_expires_at: int
    ) -> RedeemOutcome:
        """Mark the code used and start its family with `first`, atomically: of any number of
        concurrent callers exactly one gets REDEEMED. A code used before is refused and the
        family its first use started is revoked (a `sid` entry) in the same transaction."""

    async def consent(self, sub: str, client_id: str) -> str | None:
        """The scopes `sub` allowed `client_id`, or None."""

    async def grant_consent(self, sub: str, client_id: str, scope: str, now: int) -> None:
        """Remember these scopes too (added to what was allowed before)."""

    async def consents(self, sub: str) -> list[tuple[str, str, int]]:
        """(client_id, scope, granted_at) of every client `sub` allowed, by client id."""

    async def revoke_consent(self, sub: str, client_id: str) -> bool: ...

    async def prune_sign_in(self, now: int) -> int:
        """Delete codes and login sessions past their expiry; returns rows removed."""


class Store(UserStore, ClientStore, FamilyStore, RevocationStore, SignInStore, Protocol):
    async def close(self) -> None: ...
