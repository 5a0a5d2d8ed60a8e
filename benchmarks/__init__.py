"""Benchmarks: scripts that print JSON figures; not part of the test suite."""
