"""Short garbage collections while a run is under way.

A full collection walks every object the process holds, and the event loop stands still meanwhile,
for tens of milliseconds in a large process (a test session, say). During such a pause the tokens
of many streams wait in their sockets; when one read then takes several of them, the kernel reports
the arrival of the newest only, so earlier tokens are stamped late (by up to the pause). Freezing
what exists before the run (:func:`gc.freeze`) leaves full collections only the objects the run
itself creates.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["frozen_heap"]


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Collect once, then keep every object that exists now out of garbage collection until the end
    of the block. Does nothing if the caller has frozen objects already (their freeze stays theirs)."""
    if gc.get_freeze_count():
        yield
        return
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
