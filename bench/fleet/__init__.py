"""The fleet simulation: many replicas' real verifier parts in a few processes (`sim`), and
the deployment they follow (`deploy`: two issuers on one PostgreSQL behind nginx, with Redis).

`bench/suites/fleet.py` drives both and turns what they report into rows.
"""
