"""Unit tests of the bench's pure logic (definitions, configuration, the table), without any server.

    .venv/bin/python -m pytest -q -p no:django bench/tests

They sit outside the suite's `tests/` on purpose: `make test` never runs the bench, and these need neither
Django nor PostgreSQL. The bench itself is exercised end to end by `BENCH_SMOKE=1 make bench`.
"""
