"""The server-side session strategies the benchmark compares stateless tokens against.

One FastAPI app (`common.py`) over three stores: a shared Redis store (`redis_store.py`),
sticky in-process sessions (`sticky.py`) and session clustering by HTTP fan-out
(`cluster.py`); a replica runs as `python -m bench.strategies.serve`. In front of N of them,
nginx (`nginx.py`) or, where it is not installed, a Python balancer (`balancer.py`) that
routes the same way: round robin, and for sticky by the `route` cookie a replica sets at
login. `cluster_runner.start` runs a whole deployment; `death.replica_death` kills a replica
mid-run and counts who had to log in again. Nothing is imported here, so
starting a replica loads only what its strategy needs.
"""
