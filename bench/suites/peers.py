"""Suite "peers": our warm `/me` against what a FastAPI team would otherwise write or install.

Contenders, each its own uvicorn process: the no-auth baseline, our demo API's `/me`
(one token repeated), the FastAPI docs' OAuth2 + JWT recipe with async and with sync
dependencies, and fastapi-users (JWT strategy, SQLAlchemy user database on SQLite).
Each peer mints its own token through its own login route, and must refuse a request
without a credential with 401 before anything is measured.
"""

from __future__ import annotations

from types import ModuleType

from auth_service.launch import Service
from bench.harness import BenchError, Contender, Context, app_process, measure
from bench.peers import docs_recipe, fastapi_users_jwt
from bench.profile import profile_missed
from bench.report import SuiteResult, contender_rows, ratio_rows
from bench.suites._ours import bearer, replica, start_issuers

BASELINE = "no auth"
OURS = "ours: /me warm RS256"
# Our warm req/s divided by each peer's, measured round by round.
TARGETS = {"docs recipe (async)": 3.0, "docs recipe (sync def)": 3.0, "fastapi-users JWT": 10.0}


def run(ctx: Context) -> SuiteResult:
    issuer = start_issuers(ctx, ["RS256"])["RS256"]
    ours = replica(issuer, "warm-rs256", cache=True)
    noauth = app_process(ctx, "noauth", "bench.apps.noauth")
    peers: dict[str, tuple[Service, ModuleType]] = {
        "docs recipe (async)": (app_process(ctx, "docs-async", "bench.peers.docs_recipe"), docs_recipe),
        "docs recipe (sync def)": (app_process(ctx, "docs-sync", "bench.peers.docs_recipe", ["--sync"]), docs_recipe),
        "fastapi-users JWT": (
            app_process(
                ctx, "fastapi-users", "bench.peers.fastapi_users_jwt", ["--db", str(ctx.workdir / "fastapi_users.db")]
            ),
            fastapi_users_jwt,
        ),
    }
    ctx.start([noauth, ours, *(server for server, _ in peers.values())], "server")

    ctx.expect("no-auth route answers 200", f"{noauth.url}/me", 200)
    ctx.expect("ours accepts the issued token", f"{ours.url}/me", 200, bearer(issuer.token))
    ctx.expect("ours answers 401 without a credential", f"{ours.url}/me", 401)
    contenders = [
        Contender(BASELINE, f"{noauth.url}/me", noauth),
        Contender(OURS, f"{ours.url}/me", ours, bearer(issuer.token)),
    ]
    for name, (server, module) in peers.items():
        token = _login(ctx, server, module)
        ctx.expect(f"{name} accepts its own token", f"{server.url}/me", 200, bearer(token))
        ctx.expect(f"{name} answers 401 without a credential", f"{server.url}/me", 401)
        contenders.append(Contender(name, f"{server.url}/me", server, bearer(token)))

    runs = measure(ctx, contenders)
    rows = contender_rows(runs, baseline=BASELINE, targets={}) + ratio_rows(runs, OURS, TARGETS)
    named = {c.name: c for c in contenders}
    behind = {name: [named[OURS], named[name]] for name in TARGETS}
    notes = profile_missed(ctx, rows, behind)
    return SuiteResult("peers", rows, runs, ctx.checks, notes)


def _login(ctx: Context, server: Service, module: ModuleType) -> str:
    """A token from the peer's own login route (OAuth2 password form, as both peers take it)."""
    response = ctx.http.post(f"{server.url}{module.TOKEN_PATH}", data=module.CREDENTIALS)
    if response.status_code != 200:
        raise BenchError(f"login at {server.name} failed: {response.status_code} {response.text}")
    return str(response.json()["access_token"])
