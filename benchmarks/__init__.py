"""Benchmarks: reports printed side by side, never timed tests (``make bench``)."""
