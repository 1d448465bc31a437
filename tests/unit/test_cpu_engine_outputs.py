"""What the CPU engine reports: response tensors (``responses.py``), gauges (``engine_metrics.py``), stop.

The modules run inside Triton's python backend, not as part of the trtclient package, so they are loaded
from their files; they need no Triton. The same facts through the real server are covered by
``tests/integration/test_engine_contract.py``.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from trtclient.server.engine import build_cpu_engine
from trtclient.server.paths import TEMPLATES_DIR
from trtclient.server.tokenizer import default_tokenizer_dir

ENGINE_DIR = TEMPLATES_DIR / "tensorrt_llm" / "1"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"{name}_under_test", ENGINE_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


ce = _load("cpu_engine")
responses = _load("responses")
metrics = _load("engine_metrics")


@pytest.fixture(scope="module")
def engine_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("engine")
    return build_cpu_engine(
        out, tokenizer_dir=default_tokenizer_dir(), profile="instant", max_batch_size=4, kv_cache_tokens=640
    )


@pytest.fixture()
def scheduler(engine_dir: Path) -> Any:
    return ce.Scheduler(ce.EngineSettings.load(engine_dir))


def spec(streaming: bool, exclude: bool = False, max_new: int = 5, **kw: Any) -> Any:
    return ce.RequestSpec(
        prompt=[57, 74, 274],
        max_new_tokens=max_new,
        end_id=2,
        streaming=streaming,
        exclude_input=exclude,
        **kw,
    )


def run(scheduler: Any, *specs: Any) -> list[Any]:
    for s in specs:
        scheduler.submit(s)
    emissions: list[Any] = []
    while not scheduler.idle:
        scheduler.admit()
        scheduler.step()
        emissions.extend(scheduler.collect())
    return emissions


def tensors(emission: Any, **row: Any) -> dict[str, np.ndarray]:
    wanted = responses.Wanted(**{k: True for k in row.pop("wanted", ())})
    return dict(responses.output_tensors(emission, responses.Row(wanted, **row), vocab_size=50))


ALL = ("log_probs", "context_logits", "generation_logits", "perf", "num_input", "num_output")


def test_whole_answer_shapes(scheduler: Any) -> None:
    (emission,) = run(scheduler, spec(streaming=False))
    out = tensors(emission, wanted=ALL)
    assert out["output_ids"].shape == (1, 1, 8)  # prompt echoed
    assert out["sequence_length"].tolist() == [[8]]
    assert out["output_log_probs"].shape == (1, 1, 5)  # generated tokens only
    assert out["cum_log_probs"][0][0] == pytest.approx(float(out["output_log_probs"].sum()))
    assert out["context_logits"].shape == (1, 3, 50)
    assert out["generation_logits"].shape == (1, 1, 5, 50)
    assert out["num_output_tokens"].tolist() == [[8]]  # what output_ids carries, prompt included
    assert out["num_input_tokens"].tolist() == [[3]]
    assert all(out[name].shape == (1, 1) for name in ("arrival_time_ns", "kv_cache_alloc_total_blocks"))
    assert "batch_index" not in out and "sequence_index" not in out


def test_streamed_answer_shapes(scheduler: Any) -> None:
    emissions = run(scheduler, spec(streaming=True))
    assert len(emissions) == 5
    shapes = [tensors(e, wanted=ALL) for e in emissions]
    assert all(s["output_log_probs"].shape == (1, 1, 1) for s in shapes)
    assert all(s["num_output_tokens"].tolist() == [[1]] for s in shapes)
    cumulative = [float(s["cum_log_probs"][0][0]) for s in shapes]
    assert cumulative == sorted(cumulative, reverse=True)  # log probs add up, never positive


def test_optional_outputs_only_when_asked(scheduler: Any) -> None:
    (emission,) = run(scheduler, spec(streaming=False))
    assert set(tensors(emission)) == {"output_ids", "sequence_length"}


def test_batch_and_sequence_indexes(scheduler: Any) -> None:
    emissions = run(scheduler, spec(streaming=False, num_sequences=2))
    out = [tensors(e, batch_index=1, batch_size=2) for e in emissions]
    assert sorted(int(o["sequence_index"][0][0]) for o in out) == [0, 1]
    assert all(o["batch_index"].tolist() == [[1]] for o in out)


def test_stop_ends_with_what_was_generated(scheduler: Any) -> None:
    request = spec(streaming=False, exclude=True, max_new=50)
    scheduler.submit(request)
    for _ in range(3):
        scheduler.admit()
        scheduler.step()
        assert scheduler.collect() == []
    scheduler.stop(request)
    scheduler.admit()
    scheduler.step()
    (emission,) = scheduler.collect()
    assert emission.request_finished and len(emission.tokens) == 3
    assert scheduler.idle and scheduler.kv_used == 0


def test_stop_of_a_queued_request(engine_dir: Path) -> None:
    scheduler = ce.Scheduler(ce.EngineSettings.load(engine_dir))
    running = [spec(streaming=True, max_new=20) for _ in range(4)]  # fills max_batch_size 4
    queued = spec(streaming=True, max_new=20)
    for s in [*running, queued]:
        scheduler.submit(s)
    scheduler.admit()
    scheduler.step()
    scheduler.collect()
    scheduler.stop(queued)
    emissions = run(scheduler)
    mine = [e for e in emissions if e.sequence.request is queued]
    assert [e.tokens for e in mine] == [[]] and mine[0].request_finished


def test_gauges_follow_the_batch(engine_dir: Path) -> None:
    scheduler = ce.Scheduler(ce.EngineSettings.load(engine_dir))
    for _ in range(6):
        scheduler.submit(spec(streaming=True, max_new=70))  # 73 tokens: two blocks each
    scheduler.admit()
    scheduler.step()
    values = metrics.snapshot(scheduler, now_s=2.0)
    requests, kv = values["nv_trt_llm_request_metrics"], values["nv_trt_llm_kv_cache_block_metrics"]
    assert requests == {"active": 6, "max": 4, "scheduled": 4, "context": 4, "waiting": 2}
    assert kv["max"] == 10 and kv["used"] == 8 and kv["free"] == 2 and kv["fraction"] == pytest.approx(0.8)
    assert kv["tokens_per"] == 64
    assert values["nv_trt_llm_inflight_batcher_metrics"]["total_context_tokens"] == 12
    assert values["nv_trt_llm_general_metrics"] == {"timestamp": 2e6, "iteration_counter": 1}
    scheduler.collect()
    scheduler.admit()
    scheduler.step()
    second = metrics.snapshot(scheduler)
    assert second["nv_trt_llm_request_metrics"]["context"] == 0
    assert second["nv_trt_llm_inflight_batcher_metrics"]["generation_requests"] == 4
    run(scheduler)
    idle = metrics.snapshot(scheduler)
    assert idle["nv_trt_llm_request_metrics"]["active"] == 0
    assert idle["nv_trt_llm_kv_cache_block_metrics"]["used"] == 0


def test_every_family_has_the_backend_label_set() -> None:
    published: dict[str, dict[str, str]] = {}

    class Metric:
        def __init__(self, labels: dict[str, str]) -> None:
            self.labels = labels

        def set(self, value: float) -> None:
            published[",".join(f"{k}={v}" for k, v in sorted(self.labels.items()))] = {"value": str(value)}

    class Family:
        GAUGE = "gauge"

        def __init__(self, name: str, description: str, kind: str) -> None:
            self.name = name

        def Metric(self, labels: dict[str, str]) -> Metric:  # noqa: N802 (Triton's spelling)
            return Metric({"family": self.name, **labels})

    stand_in = ModuleType("pb")
    stand_in.MetricFamily = Family  # type: ignore[attr-defined]
    reporter = metrics.TritonMetrics(stand_in, "tensorrt_llm", "1")
    assert reporter.histograms == {}  # this stand-in has no HISTOGRAM kind
    reporter.publish({"nv_trt_llm_request_metrics": {"active": 3}})
    (key,) = published
    assert key == "family=nv_trt_llm_request_metrics,model=tensorrt_llm,request_type=active,version=1"
    assert len(reporter.gauges) == 5 + 6 + 4 + 2


def test_batch_index_for_a_single_row_only_for_older_interfaces(scheduler: Any) -> None:
    (emission,) = run(scheduler, spec(streaming=False))
    assert "batch_index" not in tensors(emission)
    assert tensors(emission, batch_index_always=True)["batch_index"].tolist() == [[0]]


def test_only_changed_values_are_set() -> None:
    sets: list[float] = []

    class Family:
        GAUGE = "gauge"

        def __init__(self, **_: Any) -> None:
            pass

        def Metric(self, labels: dict[str, str]) -> Any:  # noqa: N802 (Triton's spelling)
            return types.SimpleNamespace(set=sets.append)

    reporter = metrics.TritonMetrics(types.SimpleNamespace(MetricFamily=Family), "tensorrt_llm", "1")
    reporter.publish({"nv_trt_llm_request_metrics": {"active": 1, "max": 4}}, now_s=10.0)
    reporter.publish({"nv_trt_llm_request_metrics": {"active": 2, "max": 4}}, now_s=10.0)
    assert sets == [1.0, 4.0, 2.0]


def test_iteration_counter_alone_waits_for_the_quiet_period() -> None:
    sets: list[float] = []

    class Family:
        GAUGE = "gauge"

        def __init__(self, **_: Any) -> None:
            pass

        def Metric(self, labels: dict[str, str]) -> Any:  # noqa: N802 (Triton's spelling)
            return types.SimpleNamespace(set=sets.append)

    reporter = metrics.TritonMetrics(types.SimpleNamespace(MetricFamily=Family), "m", "1", quiet_period_s=0.1)
    general = "nv_trt_llm_general_metrics"
    reporter.publish({general: {"iteration_counter": 1}}, now_s=10.0)
    reporter.publish({general: {"iteration_counter": 2}}, now_s=10.05)  # within the period: held
    reporter.publish(
        {general: {"iteration_counter": 3}, "nv_trt_llm_request_metrics": {"active": 1}}, now_s=10.06
    )
    reporter.publish({general: {"iteration_counter": 4}}, now_s=10.2)
    assert sets == [1.0, 3.0, 1.0, 4.0]
