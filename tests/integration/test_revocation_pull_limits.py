"""`GET /revocations` is public, and a page of 10,000 entries costs the issuer real CPU:
pages are rendered once per feed head and served from a cache, and an address that asks
for more uncached entries than its budget gets 429 with Retry-After."""

from __future__ import annotations

from tests.conftest import Stack


def test_uncached_pages_beyond_an_addresss_budget_get_429_while_cached_pages_stay_free(stack: Stack) -> None:
    stack.start_auth(AUTH_REVOCATION_PULL_BUDGET="25000")
    assert stack.auth is not None
    url = f"{stack.auth.url}/revocations"
    first = stack.http.get(url, params={"limit": "10000"})
    assert first.status_code == 200 and first.json()["snapshot"] is True
    feed = first.json()["feed"]
    for limit in (9999, 9998):  # two more uncached pages: 29,997 entries asked of a 25,000 budget
        answer = stack.http.get(url, params={"limit": str(limit)})
        assert answer.status_code == (200 if limit == 9999 else 429), answer.text
    assert answer.json()["error"] == "temporarily_unavailable"
    assert 1 <= int(answer.headers["retry-after"]) <= 60
    for _ in range(5):  # the same pages again come from the cache: free
        again = stack.http.get(url, params={"limit": "10000"})
        assert again.status_code == 200 and again.content == first.content
    # the default page is a replica's own, 2,000 entries: a 25,000 budget holds several
    assert stack.http.get(url, params={"after": "0", "feed": feed}).status_code == 200
