"""The CPU engine's scheduler and generator, without Triton (they are plain Python).

The module runs inside Triton's python backend, not as part of the trtclient package, so it is loaded
from its file.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from trtclient.server.engine import build_cpu_engine
from trtclient.server.paths import TEMPLATES_DIR
from trtclient.server.profiles import get_profile
from trtclient.server.tokenizer import default_tokenizer_dir


def _load() -> ModuleType:
    path = TEMPLATES_DIR / "tensorrt_llm" / "1" / "cpu_engine.py"
    spec = importlib.util.spec_from_file_location("cpu_engine_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


ce = _load()


@pytest.fixture(scope="module")
def engine_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("engine")
    return build_cpu_engine(
        out,
        tokenizer_dir=default_tokenizer_dir(),
        profile="orin-int4",
        max_batch_size=4,
        kv_cache_tokens=100,
        tokens_per_block=10,
    )


def make_scheduler(engine_dir: Path, clock: list[int] | None = None) -> Any:
    settings = ce.EngineSettings.load(engine_dir)
    ticks = clock if clock is not None else [0]
    return ce.Scheduler(settings, clock_ns=lambda: ticks[0])


def spec(prompt_len: int = 5, max_new: int = 10, **kw: Any) -> Any:
    defaults: dict[str, Any] = {"end_id": 2, "streaming": True, "exclude_input": True}
    return ce.RequestSpec(
        prompt=list(range(100, 100 + prompt_len)), max_new_tokens=max_new, **{**defaults, **kw}
    )


def run_to_end(scheduler: Any, limit: int = 1000) -> list[Any]:
    emissions: list[Any] = []
    for _ in range(limit):
        if scheduler.idle:
            return emissions
        scheduler.admit()
        scheduler.step()
        emissions.extend(scheduler.collect())
    raise AssertionError("scheduler did not finish")


def test_engine_config_has_trtllm_layout(engine_dir: Path) -> None:
    settings = ce.EngineSettings.load(engine_dir)
    assert settings.limits.max_batch_size == 4
    assert settings.limits.kv_cache_tokens == 100
    assert settings.profile_name == "orin-int4"


def test_batch_size_limits_admission(engine_dir: Path) -> None:
    scheduler = make_scheduler(engine_dir)
    for _ in range(6):
        scheduler.submit(spec(prompt_len=2, max_new=3))
    assert len(scheduler.admit()) == 4
    assert len(scheduler.waiting) == 2


def test_kv_capacity_makes_requests_wait(engine_dir: Path) -> None:
    scheduler = make_scheduler(engine_dir)
    for _ in range(3):
        scheduler.submit(spec(prompt_len=20, max_new=20))  # 40 KV tokens each, capacity 100
    assert len(scheduler.admit()) == 2
    run = run_to_end(scheduler)
    assert sum(e.request_finished for e in run) == 3
    assert scheduler.kv_used == 0


def test_streaming_emits_one_token_per_iteration_and_finishes(engine_dir: Path) -> None:
    scheduler = make_scheduler(engine_dir)
    scheduler.submit(spec(max_new=7))
    emissions = run_to_end(scheduler)
    assert [len(e.tokens) for e in emissions] == [1] * 7
    assert [e.request_finished for e in emissions] == [False] * 6 + [True]


def test_non_streaming_sends_prompt_and_tokens_once(engine_dir: Path) -> None:
    scheduler = make_scheduler(engine_dir)
    request = spec(prompt_len=3, max_new=4, streaming=False, exclude_input=False)
    scheduler.submit(request)
    (emission,) = run_to_end(scheduler)
    assert emission.tokens[:3] == request.prompt
    assert len(emission.tokens) == 7


def test_same_seed_same_tokens_other_seed_other_tokens(engine_dir: Path) -> None:
    def tokens(seed: int) -> list[int]:
        scheduler = make_scheduler(engine_dir)
        scheduler.submit(spec(max_new=12, seed=seed, streaming=False))
        return list(run_to_end(scheduler)[0].tokens)

    assert tokens(3) == tokens(3)
    assert tokens(3) != tokens(4)


def test_end_id_ends_early_unless_min_tokens(engine_dir: Path) -> None:
    probe = make_scheduler(engine_dir)
    probe.submit(spec(max_new=8, streaming=False))
    third = run_to_end(probe)[0].tokens[2]
    ended = make_scheduler(engine_dir)
    ended.submit(spec(max_new=8, streaming=False, end_id=third))
    assert len(run_to_end(ended)[0].tokens) == 2
    held = make_scheduler(engine_dir)
    held.submit(spec(max_new=8, streaming=False, end_id=third, min_tokens=6))
    assert len(run_to_end(held)[0].tokens) >= 6


def test_stop_word_ends_and_bad_word_is_avoided(engine_dir: Path) -> None:
    probe = make_scheduler(engine_dir)
    probe.submit(spec(max_new=10, streaming=False))
    free = list(run_to_end(probe)[0].tokens)
    stop = make_scheduler(engine_dir)
    stop.submit(spec(max_new=10, streaming=False, stop_words=[(free[3], free[4])]))
    assert list(run_to_end(stop)[0].tokens) == free[:5]
    bad = make_scheduler(engine_dir)
    bad.submit(spec(max_new=10, streaming=False, bad_words=[(free[0],)]))
    assert free[0] not in run_to_end(bad)[0].tokens


def test_num_sequences_share_the_request_and_differ(engine_dir: Path) -> None:
    scheduler = make_scheduler(engine_dir)
    scheduler.submit(spec(max_new=6, streaming=False, num_sequences=2))
    emissions = run_to_end(scheduler)
    assert sorted(e.sequence.index for e in emissions) == [0, 1]
    assert [e.request_finished for e in emissions] == [False, True]
    assert emissions[0].tokens != emissions[1].tokens


def test_cancel_frees_the_batch_and_queue(engine_dir: Path) -> None:
    scheduler = make_scheduler(engine_dir)
    running, queued = spec(max_new=50), spec(max_new=50)
    scheduler.submit(running)
    scheduler.admit()
    scheduler.submit(queued)
    assert scheduler.cancel(running) and scheduler.cancel(queued)
    assert scheduler.idle and scheduler.kv_used == 0
    assert not scheduler.cancel(running)


def test_timestamps_are_ordered(engine_dir: Path) -> None:
    clock = [10]
    scheduler = make_scheduler(engine_dir, clock)
    request = spec(max_new=3)
    scheduler.submit(request)
    scheduler.admit()
    clock[0] = 20
    scheduler.step()
    first = scheduler.collect()[0].sequence
    assert (request.first_scheduled_ns, first.first_token_ns) == (10, 20)
    clock[0] = 30
    run_to_end(scheduler)
    assert first.last_token_ns == 30


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max_new_tokens": 0}, "max_tokens must be at least 1"),
        ({"prompt": list(range(1025))}, "exceeds the engine's max_input_len"),
        ({"max_new_tokens": 2047}, "exceeds the engine's max_seq_len"),
        ({"prompt": []}, "the prompt is empty"),
        ({"num_sequences": 0}, "num_return_sequences must be at least 1"),
    ],
)
def test_validation_messages(engine_dir: Path, changes: dict[str, Any], message: str) -> None:
    limits = ce.EngineSettings.load(engine_dir).limits
    request = spec()
    for key, value in changes.items():
        setattr(request, key, value)
    with pytest.raises(ce.RequestError, match=message):
        ce.validate(request, limits, beam_width=1)


def test_beam_width_above_one_is_refused(engine_dir: Path) -> None:
    limits = ce.EngineSettings.load(engine_dir).limits
    with pytest.raises(ce.RequestError, match="beam_width 2 is not supported"):
        ce.validate(spec(), limits, beam_width=2)


def test_word_list_layout() -> None:
    assert ce.parse_word_list([5, 6, 7, 0], [2, 3, -1, -1]) == [(5, 6), (7,)]
    assert ce.parse_word_list([0], [-1]) == []


def test_iteration_time_follows_the_profile(engine_dir: Path) -> None:
    profile = get_profile("orin-int4")
    scheduler = make_scheduler(engine_dir)
    scheduler.submit(spec(prompt_len=128, max_new=5))
    admitted = scheduler.admit()
    assert scheduler.iteration_seconds(admitted) == pytest.approx(profile.context_seconds(128))
    scheduler.step()
    scheduler.collect()
    assert scheduler.iteration_seconds([]) == pytest.approx(profile.step_seconds(1, 129), rel=1e-3)


def test_profile_matches_the_published_table() -> None:
    profile = get_profile("orin-int4")
    assert [round(profile.context_seconds(n) * 1000) for n in (128, 512, 1024)] == [91, 260, 582]
    assert 1 / profile.step_seconds(1, 512) == pytest.approx(35.2)
    assert profile.step_seconds(20, 512) > profile.step_seconds(1, 512)
    assert get_profile("instant").step_seconds(64, 1000) == 0.0
