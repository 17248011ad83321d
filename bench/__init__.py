"""Benchmarks and fault drills of insta-service: `python -m bench`, `python -m bench.faults`.

Everything runs as subprocesses on loopback against a PostgreSQL database of its own
(BENCH_DATABASE_URL), and stops by itself. See bench/README.md.
"""
