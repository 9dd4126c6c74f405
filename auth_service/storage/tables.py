"""The relational schema, shared by every SQL backend (SQLite now, PostgreSQL later)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, ForeignKey, Index, Integer, MetaData, String, Table, Text, false

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("username", String(256), nullable=False),
    # NFKC + casefold of the username: the uniqueness and lookup key.
    Column("username_key", String(256), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("scope", Text, nullable=False, default=""),
    Column("created_at", BigInteger, nullable=False),
    Column("password_changed_at", BigInteger, nullable=False),
    Column("disabled_at", BigInteger, nullable=True),  # set: no login, no refresh
    # OpenID Connect claims, where the user has them (`profile` and `email` scopes).
    Column("name", Text, nullable=True),
    Column("email", String(320), nullable=True),
    Column("email_verified", Boolean, nullable=False, server_default=false()),
)

clients = Table(
    "clients",
    metadata,
    Column("client_id", String(128), primary_key=True),
    Column("secret_hash", Text, nullable=True),  # NULL: a public client, which has no secret
    Column("scope", Text, nullable=True),  # allowed scopes; NULL: any scope the user holds
    Column("created_at", BigInteger, nullable=False),
    # Space-separated lists: grant types, scopes and audiences are tokens without spaces, and
    # so are redirect URIs (RFC 3986 has no space in a URI).
    Column("grant_types", Text, nullable=False, server_default=""),
    Column("redirect_uris", Text, nullable=False, server_default=""),
    Column("audiences", Text, nullable=False, server_default=""),  # empty: AUTH_AUDIENCE
    Column("name", Text, nullable=False, server_default=""),
    Column("first_party", Boolean, nullable=False, server_default=false()),
    # Where RP-initiated logout may send the browser back to (exact strings, like redirect_uris).
    Column("post_logout_redirect_uris", Text, nullable=False, server_default=""),
)

families = Table(
    "families",
    metadata,
    Column("sid", String(64), primary_key=True),
    Column("sub", String(128), nullable=False, index=True),
    Column("client_id", String(128), nullable=False),
    # The login that started the session: AUTH_SESSION_MAX_LIFETIME counts from it.
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Column("audience", String(256), nullable=True),  # the `aud` of its access tokens; NULL: AUTH_AUDIENCE
    # The issuer's browser login session it came from (authorization code flow); NULL: a password login.
    Column("login_session", String(64), nullable=True, index=True),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("jti", String(64), primary_key=True),
    Column("sid", String(64), ForeignKey("families.sid", ondelete="CASCADE"), nullable=False, index=True),
    Column("scope", Text, nullable=False),
    Column("issued_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("used_at", BigInteger, nullable=True),
)

revocations = Table(
    "revocations",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(8), nullable=False),
    Column("value", String(128), nullable=False),
    Column("before", BigInteger, nullable=True),
    Column("expires_at", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_revocations_kind_value", "kind", "value"),
    Index("ix_revocations_expires_at", "expires_at"),
)

# One row: the feed's id and head. Incrementing `head` inside the writing transaction
# both serialises writers and keeps seq numbers consecutive (gap detection relies on it).
feed = Table(
    "feed",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("feed_id", String(64), nullable=False),
    Column("head", BigInteger, nullable=False),
)

# A person signed in at the hosted login page: the browser holds a cookie whose SHA-256 is
# `cookie_hash`; every client's /authorize in that browser uses it (single sign-on).
login_sessions = Table(
    "login_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("cookie_hash", String(64), nullable=False, unique=True),
    Column("sub", String(128), nullable=False, index=True),
    Column("auth_time", BigInteger, nullable=False),  # when the password was last checked
    Column("expires_at", BigInteger, nullable=False),
    Column("ended_at", BigInteger, nullable=True),
)

# Authorization codes (RFC 6749 section 4.1.2): stored by SHA-256, single use, bound to what
# /authorize checked. `sid` is chosen when the code is issued, so a replay can revoke the
# family the first use started, even one still being stored.
authorization_codes = Table(
    "authorization_codes",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("client_id", String(128), nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("code_challenge", String(128), nullable=False),
    Column("nonce", Text, nullable=True),
    Column("scope", Text, nullable=False),
    Column("audience", String(256), nullable=False),
    Column("sub", String(128), nullable=False),
    Column("login_session", String(64), nullable=False),
    Column("auth_time", BigInteger, nullable=False),
    Column("sid", String(64), nullable=False),
    Column("expires_at", BigInteger, nullable=False, index=True),
    Column("used_at", BigInteger, nullable=True),
)

# What a person allowed a (third-party) client, remembered until revoked.
consents = Table(
    "consents",
    metadata,
    Column("sub", String(128), primary_key=True),
    Column("client_id", String(128), primary_key=True),
    Column("scope", Text, nullable=False),
    Column("granted_at", BigInteger, nullable=False),
)

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("alg", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("activates_at", BigInteger, nullable=False),
    Column(
        "private_key", Text, nullable=False
    ),  # sealed with AUTH_KEYS_PASSPHRASE (keystore.py; older rows: encrypted PKCS#8 PEM)
)
