"""The load engine behind ``trtclient bench``: schedules, workloads, runner, reports, plots, /metrics.

:func:`trtclient.bench.session.run_bench` runs one benchmark; ``docs/bench.md`` documents the command,
the metric definitions and the output schemas.
"""
