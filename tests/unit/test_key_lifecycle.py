"""Key states follow from activation times alone: pending -> active -> retiring -> gone."""

from __future__ import annotations

from auth_service.keys import KeyState, next_activation, states
from auth_service.storage.keyfiles import KeyRecord

LIFETIME = 100  # longest token lifetime, seconds


def key(kid: str, activates_at: int) -> KeyRecord:
    return KeyRecord(kid=kid, alg="RS256", created_at=activates_at - 10, activates_at=activates_at)


def test_a_single_started_key_is_active() -> None:
    assert states([key("a", 0)], now=50, max_token_lifetime=LIFETIME) == {"a": KeyState.ACTIVE}


def test_a_key_whose_activation_is_ahead_is_pending_and_the_old_one_still_signs() -> None:
    assert states([key("a", 0), key("b", 60)], now=50, max_token_lifetime=LIFETIME) == {
        "a": KeyState.ACTIVE,
        "b": KeyState.PENDING,
    }


def test_the_superseded_key_is_retiring_until_its_last_token_expired() -> None:
    records = [key("a", 0), key("b", 60)]
    assert states(records, now=60, max_token_lifetime=LIFETIME)["a"] is KeyState.RETIRING
    assert states(records, now=159, max_token_lifetime=LIFETIME)["a"] is KeyState.RETIRING
    assert states(records, now=160, max_token_lifetime=LIFETIME)["a"] is KeyState.GONE
    assert states(records, now=160, max_token_lifetime=LIFETIME)["b"] is KeyState.ACTIVE


def test_three_generations_each_in_its_own_state() -> None:
    got = states([key("a", 0), key("b", 200), key("c", 400)], now=350, max_token_lifetime=LIFETIME)
    assert got == {"a": KeyState.GONE, "b": KeyState.ACTIVE, "c": KeyState.PENDING}


def test_first_key_signs_at_once_because_no_verifier_can_have_cached_a_key_set() -> None:
    assert next_activation([], now=1000, interval=500, lead=20, alg="RS256") == 1000


def test_no_rotation_before_the_schedule() -> None:
    assert next_activation([key("a", 1000)], now=1400, interval=500, lead=20, alg="RS256") is None


def test_scheduled_rotation_publishes_the_next_key_one_lead_ahead() -> None:
    # active since 1000, interval 500: the next key must sign at 1500, so it is created at 1480.
    assert next_activation([key("a", 1000)], now=1480, interval=500, lead=20, alg="RS256") == 1500


def test_one_rotation_at_a_time_while_a_key_is_pending() -> None:
    assert next_activation([key("a", 1000), key("b", 1500)], now=1490, interval=500, lead=20, alg="RS256") is None


def test_changing_the_configured_algorithm_rotates_to_a_key_of_that_algorithm() -> None:
    assert next_activation([key("a", 1000)], now=1010, interval=500, lead=20, alg="ES256") == 1030
