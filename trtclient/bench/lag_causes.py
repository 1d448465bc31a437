"""Which lag a report should blame on the client, and which it should name for what it is.

The schedule-lag warning says the client sent requests later than planned. Two causes are not the
client's and get a note in its place:

* an open loop's ``--max-concurrency`` ceiling holding arrivals back until a request in flight ends
  (the wait between an arrival and its dispatch): the offered rate was capped on purpose;
* a closed loop's first wave, all its workers starting at once: start-up, reported apart, while the
  warning looks only at the requests after it.
"""

from __future__ import annotations

from collections.abc import Sequence

from trtclient.bench.report import LAG_WARN_MS, MS
from trtclient.loadtest.metrics import measured, schedule_lag_ns, summarize
from trtclient.loadtest.records import RequestRecord
from trtclient.loadtest.schedule import Concurrency, LoadShape, Rate

__all__ = ["explain_lag"]

_LAG_WARNING = "schedule lag p99"


def _p99_ms(values: Sequence[int]) -> float | None:
    s = summarize(values)
    return None if s is None else s.p99 * MS


def explain_lag(
    shape: LoadShape, records: Sequence[RequestRecord], warnings: list[str]
) -> tuple[list[str], list[str]]:
    """``(warnings, notes)``: the schedule-lag warning kept, or replaced by the note naming its cause."""
    if not any(w.startswith(_LAG_WARNING) for w in warnings):
        return warnings, []
    others = [w for w in warnings if not w.startswith(_LAG_WARNING)]
    runs = measured(records)
    if isinstance(shape, Rate) and shape.max_concurrency:
        waits = [r.dispatched_ns - r.intended_ns for r in runs if r.dispatched_ns is not None]
        held = _p99_ms(waits)
        if held is not None and held >= LAG_WARN_MS:
            return others, [
                f"the --max-concurrency {shape.max_concurrency} ceiling held arrivals back (p99 {held:.3g} "
                "ms waiting for a free slot): the offered rate was capped by the ceiling, not by the client"
            ]
    if isinstance(shape, Concurrency):
        ordered = sorted(runs, key=lambda r: r.index)
        first, later = ordered[: shape.concurrency], ordered[shape.concurrency :]
        start = _p99_ms([lag for r in first if (lag := schedule_lag_ns(r)) is not None])
        after = _p99_ms([lag for r in later if (lag := schedule_lag_ns(r)) is not None])
        if start is not None and (after is None or after < LAG_WARN_MS):
            shown = "none after it" if after is None else f"p99 {after:.3g} ms after it"
            return others, [
                f"the first wave ({shape.concurrency} requests at once) left up to {start:.3g} ms late: "
                f"start-up, not client lag ({shown})"
            ]
    return warnings, []
