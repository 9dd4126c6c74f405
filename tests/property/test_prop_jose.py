"""resource_service.jose under arbitrary input: the properties the token rules promise.

Tokens are signed the way the issuer signs them: keys made and published by
`auth_service.keys` (generation, RFC 7638 kid, public JWK), tokens by its `sign` (PyJWT's
primitives), verification keys parsed from that JWK by `key_from_jwk`.
"""

from __future__ import annotations

import base64
import json
import math
import re
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from auth_service import keys as issuer_keys
from resource_service import jose
from resource_service.jose import (
    MAX_TOKEN_LENGTH,
    Key,
    TokenError,
    decode,
    header_kid,
    key_from_jwk,
)

ISSUER = "https://auth.example"
AUDIENCE = "api"
NOW = 1_700_000_000
LEEWAY = 30
TYP = "at+jwt"
ALGS = ("RS256", "ES256", "Ed25519", "EdDSA")
MAX_DATE = 2**53
REASONS = {
    "malformed",
    "bad_header",
    "unsupported_alg",
    "wrong_typ",
    "unknown_kid",
    "alg_mismatch",
    "bad_signature",
    "missing_claim",
    "bad_claim",
    "wrong_issuer",
    "wrong_audience",
    "expired",
    "iat_in_future",
    "not_yet_valid",
}
STRING_CLAIMS = ("iss", "sub", "jti", "client_id", "sid", "scope")
TIME_CLAIMS = ("exp", "iat", "nbf")
CHECKED = {"aud", *STRING_CLAIMS, *TIME_CLAIMS}
REFUSED_HEADERS = ("jwk", "jku", "x5u", "x5c", "crit", "zip", "cty")

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class Signer:
    alg: str
    kid: str
    private: Any
    key: Key

    def sign(self, claims: dict[str, Any], typ: str = TYP) -> str:
        """As the issuer signs (auth_service.tokens.TokenMinter._mint)."""
        return issuer_keys.sign(claims, kid=self.kid, alg=self.alg, key=self.private, typ=typ)

    def raw(self, header: bytes, payload: bytes) -> str:
        """A token carrying exactly these header and payload bytes, validly signed."""
        signing_input = f"{b64(header)}.{b64(payload)}"
        signature = issuer_keys.ALGORITHMS[self.alg].signature(signing_input.encode(), self.private)
        return f"{signing_input}.{b64(signature)}"

    def header(self, **changes: Any) -> bytes:
        return json.dumps({"alg": self.alg, "kid": self.kid, "typ": TYP, **changes}).encode()


def _signer(alg: str) -> Signer:
    private = issuer_keys.ALGORITHMS[alg].generate()
    kid = issuer_keys.thumbprint(alg, private)
    return Signer(alg, kid, private, key_from_jwk(issuer_keys.public_jwk(kid, alg, private)))


SIGNERS = {alg: _signer(alg) for alg in ALGS}
KEYS = {s.kid: s.key for s in SIGNERS.values()}
signers = st.sampled_from(list(SIGNERS.values()))


def check(token: str, *, now: float = NOW, leeway: float = LEEWAY) -> dict[str, Any]:
    return decode(token, KEYS, typ=TYP, issuer=ISSUER, audience=AUDIENCE, now=now, leeway=leeway)


def refusal(token: str, **options: Any) -> TokenError:
    """The TokenError `token` is refused with; anything else raised, or acceptance, fails."""
    with pytest.raises(TokenError) as caught:
        check(token, **options)
    error = caught.value
    assert error.reason in REASONS
    for segment in re.findall(r"[A-Za-z0-9_-]{16,}", token):  # the description never echoes the token
        assert segment not in error.description
    return error


# -- strategies ------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)
not_numbers = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=12),
    st.lists(json_scalars, max_size=3),
    st.dictionaries(st.text(max_size=5), json_scalars, max_size=3),
)
not_strings = json_values.filter(lambda v: not isinstance(v, str))


def dates(low: float, high: float) -> st.SearchStrategy[int | float]:
    """NumericDates in [low, high]: integers or finite floats, as JSON carries them."""
    low, high = max(0, low), min(MAX_DATE, high)
    return st.one_of(
        st.integers(math.ceil(low), math.floor(high)), st.floats(low, high, allow_nan=False, allow_infinity=False)
    )


@st.composite
def valid_claims(draw: st.DrawFn) -> dict[str, Any]:
    """Claims every rule accepts at NOW, with anything else riding along."""
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": draw(
            st.one_of(
                st.just(AUDIENCE),
                st.lists(st.text(max_size=8), max_size=3).flatmap(lambda others: st.permutations([*others, AUDIENCE])),
            )
        ),
        "exp": draw(dates(NOW - LEEWAY + 0.001, MAX_DATE)),
        "iat": draw(dates(0, NOW + LEEWAY)),
        **{name: draw(st.text(max_size=24)) for name in ("sub", "jti", "client_id")},
    }
    for name in ("sid", "scope"):
        if draw(st.booleans()):
            claims[name] = draw(st.text(max_size=24))
    if draw(st.booleans()):
        claims["nbf"] = draw(dates(0, NOW + LEEWAY))
    extra = draw(st.dictionaries(st.text(max_size=12).filter(lambda n: n not in CHECKED), json_values, max_size=4))
    return {**extra, **claims}


valid_tokens = (
    st.tuples(signers, valid_claims()).map(lambda sc: sc[0].sign(sc[1])).filter(lambda t: len(t) <= MAX_TOKEN_LENGTH)
)
b64url_text = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", max_size=60)


@st.composite
def hostile_strings(draw: st.DrawFn) -> str:
    """Anything a client can put after `Bearer `, and much it cannot."""
    signer = draw(signers)
    return draw(
        st.one_of(
            st.text(max_size=200),
            st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
            st.lists(b64url_text, min_size=1, max_size=5).map(".".join),
            st.tuples(st.binary(max_size=120), st.binary(max_size=120), st.binary(max_size=80)).map(
                lambda parts: ".".join(b64(p) for p in parts)
            ),
            # JSON-ish header and payload, signature of the right length or not.
            st.tuples(
                st.dictionaries(
                    st.sampled_from(["alg", "kid", "typ", *REFUSED_HEADERS]) | st.text(max_size=6),
                    json_values | st.sampled_from([signer.alg, signer.kid, TYP]),
                    max_size=5,
                ),
                json_values,
                st.binary(min_size=0, max_size=300),
            ).map(lambda hps: ".".join(b64(json.dumps(p).encode()) if i < 2 else b64(p) for i, p in enumerate(hps))),
            # Validly signed, with whatever bytes or JSON as the payload.
            st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode())).map(
                lambda payload: signer.raw(signer.header(), payload)
            ),
            # Nested past the parser's recursion limit, or a number past int()'s digit limit; signed.
            st.integers(600, 2700).map(lambda depth: signer.raw(signer.header(), b"[" * depth + b"]" * depth)),
            st.integers(600, 900).map(
                lambda depth: signer.raw(signer.header(), b'{"a":' * depth + b"1" + b"}" * depth)
            ),
            st.integers(4000, 5500).map(lambda digits: signer.raw(signer.header(), b'{"exp": ' + b"9" * digits + b"}")),
        )
    )


# -- properties ------------------------------------------------------------------------------


@PROPERTY
@given(token=hostile_strings())
def test_decode_refuses_anything_with_token_error_only(token):
    try:
        claims = check(token)
    except TokenError as error:
        assert error.reason in REASONS
    else:
        assert isinstance(claims, dict)  # possible only for a token that passes every rule
    kid = header_kid(token)  # a hint for logs: never raises either
    assert kid is None or isinstance(kid, str)


@PROPERTY
@given(signer=signers, claims=valid_claims())
def test_a_token_signed_by_the_issuers_key_round_trips_exactly(signer, claims):
    token = signer.sign(claims)
    assume(len(token) <= MAX_TOKEN_LENGTH)
    assert check(token) == claims
    assert header_kid(token) == signer.kid


@PROPERTY
@given(token=valid_tokens, data=st.data())
def test_any_single_byte_change_to_a_valid_token_is_refused(token, data):
    raw = bytearray(token.encode("ascii"))
    index = data.draw(st.integers(0, len(raw) - 1), label="index")
    change = data.draw(st.sampled_from(["replace", "insert", "delete"]), label="change")
    byte = data.draw(st.integers(0, 255).filter(lambda b: change != "replace" or b != raw[index]), label="byte")
    if change == "replace":
        raw[index] = byte
    elif change == "insert":
        raw.insert(index, byte)
    else:
        del raw[index]
    refusal(raw.decode("latin-1"))


@PROPERTY
@given(token=valid_tokens, cut=st.integers(1, 200))
def test_a_truncated_or_extended_valid_token_is_refused(token, cut):
    refusal(token[:-cut] if cut < len(token) else "")
    refusal(token + "." + token[-min(cut, len(token)) :])


def _object(members: list[tuple[str, str]]) -> str:
    """A JSON object from (name, JSON text) pairs, in order, repeats kept."""
    return "{" + ", ".join(f"{json.dumps(name)}: {text}" for name, text in members) + "}"


@st.composite
def duplicated(draw: st.DrawFn, document: dict[str, Any]) -> bytes:
    """`document` as JSON text with a member name repeated: at the top, or in an object nested
    in a member we do not check."""
    members = [(name, json.dumps(value)) for name, value in document.items()]
    if draw(st.booleans()):
        name = draw(st.sampled_from(sorted(document)))
        members.insert(draw(st.integers(0, len(members))), (name, json.dumps(draw(json_values))))
    else:
        inner = [
            (name, json.dumps(value))
            for name, value in draw(st.dictionaries(st.text(max_size=6), json_values, min_size=1, max_size=3)).items()
        ]
        inner.insert(draw(st.integers(0, len(inner))), (draw(st.sampled_from(inner))[0], json.dumps(draw(json_values))))
        members.append(
            (
                "x-nested",
                draw(
                    st.recursive(
                        st.just(_object(inner)),
                        lambda text: st.one_of(text.map(lambda t: f"[{t}]"), text.map(lambda t: _object([("k", t)]))),
                        max_leaves=3,
                    )
                ),
            )
        )
    return _object(members).encode()


@PROPERTY
@given(signer=signers, claims=valid_claims(), name=st.sampled_from(TIME_CLAIMS), value=not_numbers)
def test_a_time_claim_that_is_not_a_number_is_refused(signer, claims, name, value):
    token = signer.raw(signer.header(), json.dumps({**claims, name: value}).encode())
    assume(len(token) <= MAX_TOKEN_LENGTH)
    assert refusal(token).reason == "bad_claim"


@PROPERTY
@given(
    signer=signers,
    claims=valid_claims(),
    name=st.sampled_from(TIME_CLAIMS),
    literal=st.one_of(
        st.integers(-(10**400), -1).map(str),
        st.integers(MAX_DATE + 1, 10**400).map(str),
        st.sampled_from(["1e400", "-1e400", "-0.5", "1e16", "NaN", "Infinity", "-Infinity"]),
    ),
)
def test_a_time_claim_out_of_range_is_refused(signer, claims, name, literal):
    text = json.dumps({**claims, name: "HOLE"}).replace('"HOLE"', literal)
    reason = refusal(signer.raw(signer.header(), text.encode())).reason
    assert reason == ("malformed" if literal in ("NaN", "Infinity", "-Infinity") else "bad_claim")


@PROPERTY
@given(signer=signers, claims=valid_claims(), name=st.sampled_from(STRING_CLAIMS), value=not_strings)
def test_a_string_claim_that_is_not_a_string_is_refused(signer, claims, name, value):
    token = signer.raw(signer.header(), json.dumps({**claims, name: value}).encode())
    assume(len(token) <= MAX_TOKEN_LENGTH)
    assert refusal(token).reason == "bad_claim"


@PROPERTY
@given(
    signer=signers,
    claims=valid_claims(),
    name=st.sampled_from(REFUSED_HEADERS),
    value=json_values,
    signature=st.binary(max_size=80),
)
def test_a_refused_header_member_is_refused_before_any_key_or_signature_work(signer, claims, name, value, signature):
    header, payload, _ = signer.raw(signer.header(**{name: value}), json.dumps(claims).encode()).split(".")
    assert refusal(f"{header}.{payload}.{b64(signature) or 'AA'}").reason == "bad_header"


@PROPERTY
@given(signer=signers, claims=valid_claims(), alg=json_values | st.sampled_from(["none", "HS256", "PS256", "rs256"]))
def test_an_algorithm_we_do_not_accept_is_refused(signer, claims, alg):
    assume(alg not in ALGS)
    token = signer.raw(signer.header(alg=alg), json.dumps(claims).encode())
    assume(len(token) <= MAX_TOKEN_LENGTH)
    assert refusal(token).reason == "unsupported_alg"


@PROPERTY
@given(signer=signers, claims=valid_claims(), alg=st.sampled_from(ALGS))
def test_the_key_decides_the_algorithm_never_the_token(signer, claims, alg):
    assume(alg != signer.alg)
    token = signer.raw(signer.header(alg=alg), json.dumps(claims).encode())
    assume(len(token) <= MAX_TOKEN_LENGTH)
    assert refusal(token).reason == "alg_mismatch"


@PROPERTY
@given(signer=signers, claims=valid_claims(), typ=json_values | st.sampled_from(["JWT", "rt+jwt", "at+JWT+x"]))
def test_typ_is_accepted_only_as_at_jwt_in_any_case_with_optional_application_prefix(signer, claims, typ):
    token = signer.raw(signer.header(typ=typ), json.dumps(claims).encode())
    assume(len(token) <= MAX_TOKEN_LENGTH)
    accepted = isinstance(typ, str) and typ.lower() in ("at+jwt", "application/at+jwt")
    if accepted:
        assert check(token) == claims
    else:
        assert refusal(token).reason == "wrong_typ"


@PROPERTY
@given(signer=signers, claims=valid_claims(), aud=json_values)
def test_the_audience_must_be_ours_or_a_list_of_strings_holding_ours(signer, claims, aud):
    token = signer.raw(signer.header(), json.dumps({**claims, "aud": aud}).encode())
    assume(len(token) <= MAX_TOKEN_LENGTH)
    if aud == AUDIENCE or (isinstance(aud, list) and all(isinstance(a, str) for a in aud) and AUDIENCE in aud):
        assert check(token)["aud"] == aud
    elif isinstance(aud, str) or (isinstance(aud, list) and all(isinstance(a, str) for a in aud)):
        assert refusal(token).reason == "wrong_audience"
    else:
        assert refusal(token).reason == "bad_claim"


@PROPERTY
@given(signer=signers, claims=valid_claims(), iss=st.text(max_size=40))
def test_the_issuer_must_match_exactly(signer, claims, iss):
    assume(iss != ISSUER)
    assert refusal(signer.sign({**claims, "iss": iss})).reason == "wrong_issuer"


@PROPERTY
@given(
    signer=signers,
    claims=valid_claims(),
    exp=dates(0, MAX_DATE),
    iat=dates(0, MAX_DATE),
    nbf=st.none() | dates(0, MAX_DATE),
    now=dates(0, 2**40),
    leeway=st.integers(0, 300),
)
def test_time_rules_are_exp_iat_nbf_with_leeway_and_nothing_else(signer, claims, exp, iat, nbf, now, leeway):
    times = {"exp": exp, "iat": iat, **({"nbf": nbf} if nbf is not None else {})}
    token = signer.sign({**{k: v for k, v in claims.items() if k != "nbf"}, **times})
    assume(len(token) <= MAX_TOKEN_LENGTH)
    if now >= exp + leeway:
        expected = "expired"
    elif iat > now + leeway:
        expected = "iat_in_future"
    elif nbf is not None and nbf > now + leeway:
        expected = "not_yet_valid"
    else:
        assert check(token, now=now, leeway=leeway)["exp"] == exp
        return
    assert refusal(token, now=now, leeway=leeway).reason == expected


@settings(PROPERTY, max_examples=50)
@given(
    tokens=st.lists(
        st.tuples(signers, valid_claims(), st.sampled_from([TYP, "AT+JWT", "JWT", "rt+jwt"])), min_size=1, max_size=6
    ),
    expected_typ=st.lists(st.sampled_from([TYP, "rt+jwt", "application/AT+jwt"]), min_size=6, max_size=6),
)
def test_the_header_memo_never_changes_an_outcome(tokens, expected_typ):
    def outcome(token: str, typ: str) -> object:
        try:
            return decode(token, KEYS, typ=typ, issuer=ISSUER, audience=AUDIENCE, now=NOW, leeway=LEEWAY)
        except TokenError as error:
            return error.reason

    minted = [signer.sign(claims, typ=typ) for signer, claims, typ in tokens]
    remembered = [outcome(t, typ) for t, typ in zip(minted, expected_typ, strict=False)]
    jose._HEADER_MEMO.clear()
    fresh = [outcome(t, typ) for t, typ in zip(minted, expected_typ, strict=False)]
    assert remembered == fresh


@given(
    token=st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.",
        min_size=MAX_TOKEN_LENGTH + 1,
        max_size=MAX_TOKEN_LENGTH + 64,
    )
)
@settings(max_examples=20, deadline=None)
def test_a_token_past_the_length_limit_is_refused_unread(token):
    assert refusal(token).description == "token is too long"
