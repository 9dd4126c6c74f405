"""resource_service.revocation_sync: pull, SSE push, gap recovery and reconnects."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
from typing import Any

import httpx
import pytest

from resource_service.revocation_sync import RevocationSync
from resource_service.revocations import RevocationList
from tests.unit.fakes import NOW, Clock, Feed, no_wait

pytestmark = pytest.mark.anyio
BASE = "https://auth.example"


@pytest.fixture
def feed() -> Feed:
    return Feed()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def client(feed):
    async with httpx.AsyncClient(transport=httpx.MockTransport(feed)) as client:
        yield client


def make_sync(copy: RevocationList, client: httpx.AsyncClient, clock: Clock, **kwargs: Any) -> RevocationSync:
    return RevocationSync(
        copy,
        client,
        list_uri=f"{BASE}/revocations",
        stream_uri=f"{BASE}/revocations/stream",
        poll_interval=kwargs.pop("poll_interval", 3600.0),
        clock=clock,
        **kwargs,
    )


async def until(condition, steps: int = 1000) -> None:
    """Let the event loop run until `condition()` holds; no wall-clock waiting."""
    for _ in range(steps):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def test_pull_takes_a_snapshot_first_and_deltas_after(feed, client, clock):
    copy = RevocationList()
    sync = make_sync(copy, client, clock)
    feed.revoke("jti", "j-1", push=False)
    assert await sync.pull() is True
    assert copy.is_revoked({"jti": "j-1"}) and copy.cursor == 1
    feed.revoke("sid", "s-1", push=False)
    assert await sync.pull() is True
    assert dict(feed.pulls[0]) == {"limit": "2000"}
    assert dict(feed.pulls[1]) == {"after": "1", "feed": "F1", "limit": "2000"}
    assert copy.is_revoked({"jti": "j-9", "sid": "s-1"}) and copy.staleness(clock.now) == 0


@pytest.mark.parametrize(
    "answer",
    [httpx.Response(503), httpx.Response(200, content=b"{"), httpx.ConnectError("down")],
    ids=["503", "bad JSON", "down"],
)
async def test_failed_pull_keeps_the_copy_and_lets_staleness_grow(clock, answer):
    async def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(answer, Exception):
            raise answer
        return answer

    copy = RevocationList()
    copy.apply_pull(
        {
            "feed": "F1",
            "cursor": 1,
            "snapshot": True,
            "entries": [{"seq": 1, "kind": "jti", "value": "j-1", "before": None, "expires_at": NOW + 600}],
        },
        NOW,
    )
    clock.now += 30
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        assert await make_sync(copy, client, clock).pull() is False
    assert copy.is_revoked({"jti": "j-1"}) and copy.staleness(clock.now) == 30


async def test_events_that_show_a_gap_ask_for_a_pull(client, clock):
    copy = RevocationList()
    copy.apply_pull({"feed": "F1", "cursor": 3, "snapshot": True, "entries": []}, NOW)
    sync = make_sync(copy, client, clock)
    sync.handle_event("heartbeat", json.dumps({"feed": "F1", "cursor": 3, "time": NOW}))
    sync.handle_event(
        "revocation", json.dumps({"seq": 4, "kind": "jti", "value": "j-4", "before": None, "expires_at": NOW + 60})
    )
    sync.handle_event("ping", "whatever")
    assert not sync.pull_wanted
    for event, data in [
        ("heartbeat", json.dumps({"feed": "F1", "cursor": 9})),
        ("heartbeat", json.dumps({"feed": "F2", "cursor": 4, "time": NOW})),
        ("heartbeat", json.dumps({"feed": "F1", "cursor": 4})),  # vouches for no read time
        ("revocation", json.dumps({"seq": 6, "kind": "jti", "value": "j-6", "expires_at": NOW + 60})),
        ("revocation", "{not json"),
    ]:
        sync = make_sync(copy, client, clock)
        sync.handle_event(event, data)
        assert sync.pull_wanted, (event, data)


async def test_stream_applies_pushed_entries_while_connected(feed, client, clock):
    copy = RevocationList()
    sync = make_sync(copy, client, clock)
    await sync.pull()
    listening = asyncio.create_task(sync.listen())
    await until(lambda: feed.streams)
    assert sync.pull_wanted  # on connect: the stream has no backlog
    feed.revoke("jti", "j-1")
    await until(lambda: copy.is_revoked({"jti": "j-1"}))
    assert copy.cursor == 1 and len(feed.pulls) == 1  # in order: no pull needed
    feed.send(None)
    assert await listening == 2  # the heartbeat and the entry


async def test_stream_error_status_raises_for_the_reconnect_loop(clock):
    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(httpx.HTTPStatusError):
            await make_sync(RevocationList(), client, clock).listen()


async def test_a_compressed_event_stream_is_refused_before_a_byte_is_inflated(clock):
    seen: list[httpx.Request] = []
    bomb = gzip.compress(gzip.compress(bytes(16 << 20)))  # "gzip, gzip": 16 MB from a few hundred bytes

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        headers = {"content-type": "text/event-stream", "content-encoding": "gzip, gzip"}
        return httpx.Response(200, headers=headers, stream=httpx.ByteStream(bomb))

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        sync = make_sync(RevocationList(), client, clock)
        with pytest.raises(ValueError, match="compressed"):
            await sync.listen()
    assert seen[0].headers["accept-encoding"] == "identity"
    assert not sync.push_connected and not sync.pull_wanted  # never counted as connected


async def test_dropped_stream_reconnects_with_capped_backoff(feed, client, clock):
    delays: list[float] = []

    class Stop(Exception):
        pass

    async def sleep(delay: float) -> None:
        delays.append(delay)
        if len(delays) == 12:
            raise Stop
        if len(delays) == 11:
            feed.down = False  # the issuer is back for the last attempt
            return
        feed.down = len(delays) >= 1

    async def drop_each_stream() -> None:
        while True:
            await until(lambda: feed.streams, steps=10**6)
            feed.send(None)
            feed.streams.clear()

    dropper = asyncio.create_task(drop_each_stream())
    with pytest.raises(Stop):
        await make_sync(RevocationList(), client, clock, sleep=sleep).listen_forever()
    dropper.cancel()
    assert feed.connections == 2  # before the outage and after it
    assert all(delay <= 30 for delay in delays)
    assert max(delays) > 8  # it did back off while the issuer was down


async def test_sync_recovers_by_itself_when_the_issuer_restarts_with_a_new_feed(feed, client, clock):
    copy = RevocationList()
    sync = make_sync(copy, client, clock, sleep=no_wait)
    feed.revoke("jti", "j-old", push=False)
    running = asyncio.create_task(sync.run())
    await until(lambda: copy.is_revoked({"jti": "j-old"}) and feed.streams)
    feed.restart("F2")
    feed.revoke("jti", "j-new", push=False)  # written while we were disconnected
    await until(lambda: copy.feed == "F2" and copy.is_revoked({"jti": "j-new"}))
    assert not copy.is_revoked({"jti": "j-old"})  # the old feed's copy was replaced
    assert feed.connections == 2
    feed.revoke("sid", "s-2")  # and pushes flow again on the new stream
    await until(lambda: copy.is_revoked({"jti": "x", "sid": "s-2"}))
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running


async def test_gap_in_the_stream_is_closed_by_a_pull(feed, client, clock):
    copy = RevocationList()
    sync = make_sync(copy, client, clock)
    running = asyncio.create_task(sync.run())
    await until(lambda: feed.streams and copy.feed == "F1" and not sync.pull_wanted)
    pulls = len(feed.pulls)
    feed.revoke("jti", "j-1", push=False)  # lost on the way
    feed.revoke("jti", "j-2")
    await until(lambda: copy.is_revoked({"jti": "j-1"}))
    assert copy.cursor == 2 and len(feed.pulls) == pulls + 1
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running


async def test_with_push_off_the_stream_is_never_opened_and_polls_keep_the_copy(feed, client, clock):
    copy = RevocationList()
    sync = make_sync(copy, client, clock, poll_interval=0.01, push=False)
    running = asyncio.create_task(sync.run())
    await until(lambda: copy.feed == "F1")
    feed.revoke("jti", "j-1")  # pushed to nobody: no stream is open
    for _ in range(100):
        clock.now += 1  # time passes: the last pull is older than the poll interval
        await asyncio.sleep(0.01)
        if copy.is_revoked({"jti": "j-1"}):
            break
    assert copy.is_revoked({"jti": "j-1"})  # arrived by the next poll
    assert feed.connections == 0
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running


async def test_a_long_list_arrives_page_by_page_and_only_the_last_page_means_in_sync(feed, client, clock):
    for i in range(7):
        feed.revoke("jti", f"j-{i}", push=False)
    feed.page_size = 3
    copy = RevocationList()
    assert await make_sync(copy, client, clock).pull() is True
    assert [p.get("after") for p in feed.pulls] == [None, "3", "6"]
    assert all(copy.is_revoked({"jti": f"j-{i}"}) for i in range(7))
    assert copy.cursor == 7 and copy.staleness(clock()) == 0


async def test_a_page_that_says_more_without_moving_the_cursor_ends_the_pull(feed, client, clock):
    feed.revoke("jti", "j-1", push=False)
    copy = RevocationList()
    sync = make_sync(copy, client, clock)
    assert await sync.pull() is True
    feed.stuck = True
    clock.now += 100
    assert await sync.pull() is False  # no endless loop against a broken issuer
    assert len(feed.pulls) == 2
    assert copy.staleness(clock()) == 100  # and the copy is not claimed to be in sync


async def test_a_stale_copy_whose_pulls_fail_pulls_once_per_interval_not_in_a_tight_loop(clock):
    attempts = []

    def refuse(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        raise httpx.ConnectError("connection refused")

    copy = RevocationList()
    copy.apply_pull({"feed": "F1", "cursor": 0, "snapshot": True, "entries": []}, NOW)
    clock.now = NOW + 3600  # long stale: every poll is due at once
    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as down:
        sync = make_sync(copy, down, clock, poll_interval=0.1)
        polling = asyncio.create_task(sync.poll_forever())
        await asyncio.sleep(0.35)
        polling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await polling
    assert 1 <= len(attempts) <= 6  # one per 0.1 s, not thousands


@pytest.mark.parametrize(
    "header,staleness",
    [
        pytest.param(f"{NOW - 30:.3f}", 30, id="read-30-s-ago"),
        pytest.param(f"{NOW + 3600:.3f}", 0, id="a-clock-ahead-of-ours-is-clamped-to-now"),
        pytest.param(None, 0, id="absent-as-from-an-older-issuer"),
        pytest.param("soon", 0, id="junk"),
        pytest.param("nan", 0, id="nan"),
        pytest.param("inf", 0, id="infinity"),
        pytest.param(f"-{NOW:.3f}", 0, id="negative"),
        pytest.param("1e9", 0, id="exponent"),
        pytest.param(f" {NOW - 30:.3f}", 0, id="padded"),
        pytest.param("1" * 40, 0, id="too-long"),
        pytest.param("", 0, id="empty"),
    ],
)
async def test_a_pulled_copy_is_in_sync_as_of_the_feed_read_at_header(feed, client, clock, header, staleness):
    feed.revoke("jti", "j-1", push=False)
    feed.read_at = header
    copy = RevocationList()
    assert await make_sync(copy, client, clock).pull() is True
    clock.now += 10
    assert copy.is_revoked({"jti": "j-1"}) and copy.staleness(clock()) == pytest.approx(staleness + 10)


async def test_a_gzip_page_applies(feed, client, clock):
    feed.gzip = True
    feed.read_at = f"{NOW - 5:.3f}"
    feed.revoke("jti", "j-1", push=False)
    copy = RevocationList()
    assert await make_sync(copy, client, clock).pull() is True
    assert copy.is_revoked({"jti": "j-1"}) and copy.cursor == 1 and copy.staleness(clock()) == 5


async def test_a_gzip_bomb_over_the_page_limit_is_refused_and_the_copy_is_unchanged(clock):
    # A valid page padded past the 16 MB page bound with whitespace: 17 KB sent, 17 MB inflated.
    page = b'{"feed": "F2", "cursor": 9, "snapshot": true, "more": false, "entries": []}' + b" " * (17 << 20)
    bomb = gzip.compress(page, 9)

    async def handler(request: httpx.Request) -> httpx.Response:
        headers = {"content-type": "application/json", "content-encoding": "gzip", "feed-read-at": f"{NOW:.3f}"}
        return httpx.Response(200, headers=headers, stream=httpx.ByteStream(bomb))

    copy = RevocationList()
    j1 = {"seq": 1, "kind": "jti", "value": "j-1", "before": None, "expires_at": NOW + 600}
    copy.apply_pull({"feed": "F1", "cursor": 1, "snapshot": True, "entries": [j1]}, NOW)
    clock.now += 30
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        assert await make_sync(copy, client, clock).pull() is False
    assert (copy.feed, copy.cursor) == ("F1", 1) and copy.is_revoked({"jti": "j-1"})
    assert copy.staleness(clock.now) == 30
