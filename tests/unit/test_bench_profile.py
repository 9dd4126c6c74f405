"""The bench's profile summary: py-spy's collapsed stacks turned into the report's shares."""

from __future__ import annotations

import pytest

from bench.profile import summarise

_ROOT = "_run_module_as_main (<frozen runpy>:198);Runner.run (asyncio/runners.py:118)"
_STACKS = [
    f"{_ROOT};RequestResponseCycle.send (uvicorn/protocols/http/httptools_impl.py:470) 50",
    f"{_ROOT};BearerAuthMiddleware.__call__ (resource_service/asgi.py:102);Route.matches (starlette/routing.py:220) 30",
    f"{_ROOT};Verifier.verify (resource_service/verifier.py:110) 20",
    # An idle thread-pool worker parked on its queue: waiting, not working.
    "_bootstrap (threading.py:1002);_worker (concurrent/futures/thread.py:81);Condition.wait (threading.py:327) 400",
]


def test_self_time_is_shared_out_by_the_package_of_the_innermost_frame() -> None:
    profile = summarise("ours", _STACKS)

    assert profile.samples == 100
    assert dict(profile.by_package) == pytest.approx({"uvicorn": 0.5, "starlette": 0.3, "resource_service": 0.2})
    assert profile.top_functions[0] == ("uvicorn:RequestResponseCycle.send", pytest.approx(0.5))


def test_our_code_counts_wherever_it_is_on_the_stack() -> None:
    # 30 samples end in starlette but pass through our middleware; 20 end in the verifier.
    assert summarise("ours", _STACKS).ours_inclusive == pytest.approx(0.5)


def test_idle_pool_threads_are_left_out_and_said_so() -> None:
    profile = summarise("peer", _STACKS)

    assert profile.idle == 400
    assert "threading" not in dict(profile.by_package)
    assert "400 of idle pool threads left out" in profile.note()


def test_lines_that_are_not_stacks_are_skipped_and_an_empty_profile_has_no_shares() -> None:
    profile = summarise("nothing", ["", "garbage", "frame (a.py:1) notanumber"])

    assert profile.samples == 0
    assert profile.by_package == [] and profile.ours_inclusive == 0.0
