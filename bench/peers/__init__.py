"""The peers a FastAPI team would otherwise use, each a small app of its own.

Each module runs as `python -m bench.peers.<name> serve --host H --port P`, serves
`GET /me` (protected, the suite's JSON shape) and `GET /healthz`, and names the route
that issues its tokens (`TOKEN_PATH`) and the credentials of its bench user (`CREDENTIALS`).
"""
