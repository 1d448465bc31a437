"""``frozen_heap``: what exists before a run stays out of garbage collection during it, and only then."""

from __future__ import annotations

import gc
import weakref

from trtclient.loadtest.heap import frozen_heap


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_objects_from_before_the_run_are_frozen_during_it_and_released_after() -> None:
    assert gc.get_freeze_count() == 0
    before = [Cycle() for _ in range(100)]
    with frozen_heap():
        assert gc.get_freeze_count() >= len(gc.get_objects()) // 2  # the bulk of the heap
        frozen = gc.get_freeze_count()
        during = [Cycle() for _ in range(100)]
        assert gc.get_freeze_count() == frozen  # what the run creates is collected as usual
        del during
    assert gc.get_freeze_count() == 0
    del before


def test_garbage_from_before_the_run_is_collected_first() -> None:
    gone = weakref.ref(Cycle())  # unreachable, but a cycle: only a collection frees it
    assert gone() is not None
    with frozen_heap():
        assert gone() is None  # collected, not frozen for the length of the run


def test_a_freeze_made_by_the_caller_is_left_alone() -> None:
    gc.freeze()
    try:
        count = gc.get_freeze_count()
        with frozen_heap():
            pass
        assert gc.get_freeze_count() == count
    finally:
        gc.unfreeze()
