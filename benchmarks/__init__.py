"""Benchmarks of trtclient: each module prints its own report and returns rows for the summary table."""
