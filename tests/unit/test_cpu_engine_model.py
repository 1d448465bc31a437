"""The CPU engine's Triton glue (``tensorrt_llm/1/model.py``) with older TRT-LLM input names.

These tests run ``model.py`` against a tiny stand-in for Triton's ``triton_python_backend_utils``: the
stand-in only carries tensors, records sent responses and keeps custom metric values in a dict. The same
inputs through the real server are covered by ``tests/integration/test_engine_contract.py``.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trtclient.server.engine import build_cpu_engine
from trtclient.server.paths import TEMPLATES_DIR
from trtclient.server.tokenizer import default_tokenizer_dir

FINAL = 1


class _Tensor:
    def __init__(self, name: str, array: Any) -> None:
        self.name, self.array = name, np.asarray(array)

    def as_numpy(self) -> np.ndarray:
        return self.array


class _Response:
    def __init__(self, output_tensors: list[_Tensor] | None = None, error: Any = None) -> None:
        self.tensors = {t.name: t.array for t in output_tensors or []}
        self.error = error


class _Sender:
    def __init__(self) -> None:
        self.responses: list[_Response] = []
        self.done = threading.Event()

    def send(self, response: _Response | None = None, flags: int = 0) -> None:
        if response is not None:
            self.responses.append(response)
        if flags & FINAL:
            self.done.set()

    def is_cancelled(self) -> bool:
        return False


class _Request:
    def __init__(self, **inputs: Any) -> None:
        self.inputs = {name: _Tensor(name, value) for name, value in inputs.items()}
        self.sender = _Sender()

    def request_id(self) -> str:
        return ""

    def get_response_sender(self) -> _Sender:
        return self.sender


class _Metric:
    def __init__(self, values: dict[str, float], key: str) -> None:
        self.values, self.key = values, key

    def set(self, value: float) -> None:
        self.values[self.key] = value

    def observe(self, value: float) -> None:
        self.values[self.key] = self.values.get(self.key, 0.0) + 1


class _MetricFamily:
    GAUGE, COUNTER = "gauge", "counter"
    values: dict[str, float] = {}

    def __init__(self, name: str, description: str, kind: str) -> None:
        self.name = name

    def Metric(self, labels: dict[str, str]) -> _Metric:  # noqa: N802 (Triton's spelling)
        key = self.name + "{" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}"
        return _Metric(self.values, key)


def _stand_in() -> types.ModuleType:
    pb = types.ModuleType("triton_python_backend_utils")
    pb.TRITONSERVER_RESPONSE_COMPLETE_FINAL = FINAL  # type: ignore[attr-defined]
    pb.Tensor = _Tensor  # type: ignore[attr-defined]
    pb.InferenceResponse = _Response  # type: ignore[attr-defined]
    pb.TritonError = str  # type: ignore[attr-defined]
    pb.TritonModelException = RuntimeError  # type: ignore[attr-defined]
    pb.get_input_tensor_by_name = lambda request, name: request.inputs.get(name)  # type: ignore[attr-defined]
    pb.using_decoupled_model_transaction_policy = lambda config: True  # type: ignore[attr-defined]
    pb.MetricFamily = _MetricFamily  # type: ignore[attr-defined]
    return pb


def _instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outputs: list[str]) -> Any:
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", _stand_in())
    path = TEMPLATES_DIR / "tensorrt_llm" / "1" / "model.py"
    spec = importlib.util.spec_from_file_location("cpu_engine_model_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    engine = build_cpu_engine(tmp_path / "engine", tokenizer_dir=default_tokenizer_dir())
    instance = module.TritonPythonModel()
    config = {
        "parameters": {"gpt_model_path": {"string_value": str(engine)}},
        "output": [{"name": name, "data_type": "TYPE_INT32"} for name in outputs],
    }
    instance.initialize({"model_config": json.dumps(config)})
    return instance


@pytest.fixture()
def model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    instance = _instance(tmp_path, monkeypatch, ["output_ids", "sequence_length", "sequence_index"])
    yield instance
    instance.finalize()


def test_batch_index_follows_the_interface_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A config without the sequence_index output (TRT-LLM backend up to v0.13) gets batch_index always."""
    for outputs, expected in ((["output_ids", "sequence_index"], False), (["output_ids"], True)):
        instance = _instance(tmp_path / str(expected), monkeypatch, outputs)
        try:
            request = _Request(input_ids=[[57, 74, 274]], input_lengths=[[3]], request_output_len=[[4]])
            instance.execute([request])
            assert request.sender.done.wait(10)
            assert ("batch_index" in request.sender.responses[-1].tensors) is expected
        finally:
            instance.finalize()


def generate(model: Any, **inputs: Any) -> list[int]:
    """Run one non-streaming request through the model and return its output ids."""
    request = _Request(input_ids=[[57, 74, 274]], input_lengths=[[3]], request_output_len=[[10]], **inputs)
    model.execute([request])
    assert request.sender.done.wait(10), "no final response"
    (response,) = request.sender.responses
    assert response.error is None, response.error
    return [int(t) for t in response.tensors["output_ids"].reshape(-1)]


def test_legacy_random_seed_means_seed(model: Any) -> None:
    assert generate(model, random_seed=[[7]]) == generate(model, seed=[[7]])
    assert generate(model, random_seed=[[7]]) != generate(model, random_seed=[[8]])


def test_legacy_min_length_means_min_tokens(model: Any) -> None:
    free = generate(model, exclude_input_in_output=[[True]])
    ended = {"exclude_input_in_output": [[True]], "end_id": [[free[2]]]}
    assert len(generate(model, **ended)) == 2
    assert len(generate(model, **ended, min_length=[[8]])) >= 8
    assert generate(model, **ended, min_length=[[8]]) == generate(model, **ended, min_tokens=[[8]])
