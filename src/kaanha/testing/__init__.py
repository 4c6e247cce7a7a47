"""Helpers for tests, benchmarks and demos: scratch databases now; fakes of external services later."""
