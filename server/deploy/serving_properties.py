"""LMI ``serving.properties`` → the build spec and the model-repository options.

AWS's Large Model Inference containers (DJL Serving) build TensorRT-LLM engines from a
``serving.properties`` file at load time. The options with an equivalent here map onto the same spec
``trtclient build`` reads and the same repository options ``trtclient serve`` renders, so an LMI deployment
can move to Triton without translating it by hand. Option meanings: djl-serving
``serving/docs/lmi/user_guides/trt_llm_user_guide.md`` and ``deployment_guide/configurations.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trtclient.server.deploy.spec import SpecError

__all__ = ["LmiOptions", "map_lmi_options", "parse_properties", "read_serving_properties"]


@dataclass(frozen=True)
class LmiOptions:
    """What a ``serving.properties`` file says, split by where it applies."""

    build: dict[str, Any]
    """Build spec fields (:class:`~trtclient.server.deploy.spec.BuildSpec`)."""
    repository: dict[str, Any]
    """Model-repository options, named like the template keys they fill."""
    ignored: tuple[str, ...]
    """Keys with no equivalent here (LMI's own server settings, runtime knobs)."""


def parse_properties(text: str) -> dict[str, str]:
    """Parse Java properties: ``key=value`` or ``key: value``, ``#``/``!`` comments, ``\\`` continuations."""
    result: dict[str, str] = {}
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip() if pending else raw.strip()
        pending = ""
        if not line or line[0] in "#!":
            continue
        if line.endswith("\\") and not line.endswith("\\\\"):
            pending = line[:-1]
            continue
        cut = min((i for i in (line.find("="), line.find(":")) if i >= 0), default=-1)
        key, value = (line[:cut], line[cut + 1 :]) if cut >= 0 else (line, "")
        result[key.strip()] = value.strip()
    if pending:
        key, _, value = pending.partition("=")
        result[key.strip()] = value.strip()
    return result


def read_serving_properties(path: Path) -> LmiOptions:
    """Read and map an LMI ``serving.properties``; a relative ``option.model_id`` is taken from its folder."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return map_lmi_options(parse_properties(text), base_dir=path.resolve().parent, source=str(path))


_DTYPES = {"fp16": "float16", "float16": "float16", "bf16": "bfloat16", "bfloat16": "bfloat16"}
_DTYPES |= {"fp32": "float32", "float32": "float32", "auto": "auto"}
_LOGITS_DTYPES = {"fp16": "float16", "float16": "float16", "fp32": "float32", "float32": "float32"}
_POLICIES = ("max_utilization", "guaranteed_no_evict")

# LMI option -> build spec field, with the conversion of its value.
_BUILD_INTS = {
    "option.tensor_parallel_degree": "tp_size",
    "option.pipeline_parallel_degree": "pp_size",
    "option.max_rolling_batch_size": "max_batch_size",
    "option.max_input_len": "max_input_len",
    # LMI's guide says its max_output_len now "maps to max_seq_len in TRTLLM"; here it keeps the meaning of
    # its name (output tokens) and the build turns it into max_seq_len = max_input_len + max_output_len.
    "option.max_output_len": "max_output_len",
    "option.max_num_tokens": "max_num_tokens",
    "option.tokens_per_block": "tokens_per_block",
    "option.num_checkpoint_workers": "convert_workers",
    "option.num_engine_workers": "workers",
}


def map_lmi_options(
    props: Mapping[str, str], *, base_dir: Path, source: str = "serving.properties"
) -> LmiOptions:
    """Map parsed properties onto build and repository options; refuse options that would change the model."""
    build: dict[str, Any] = {}
    repository: dict[str, Any] = {}
    ignored: list[str] = []

    def fail(key: str, problem: str) -> SpecError:
        return SpecError(f"{source}: {key}={props[key]}: {problem}")

    def number(key: str, convert: Callable[[str], Any]) -> Any:
        try:
            return convert(props[key])
        except ValueError:
            raise fail(key, f"expected a {'number' if convert is float else 'whole number'}") from None

    def flag(key: str) -> bool:
        value = props[key].lower()
        if value not in ("true", "false"):
            raise fail(key, "expected true or false")
        return value == "true"

    for key in props:
        if key in _BUILD_INTS:
            if key == "option.tensor_parallel_degree" and props[key].lower() == "max":
                raise fail(key, "LMI resolves 'max' from the GPUs it sees; give the number of GPUs")
            build[_BUILD_INTS[key]] = number(key, int)
        elif key == "option.model_id":
            if "://" in props[key]:
                raise fail(key, "not a local directory; download the checkpoint first and give its path")
            build["model_dir"] = str(base_dir / Path(props[key]).expanduser())
        elif key == "option.dtype":
            if props[key].lower() not in _DTYPES:
                raise fail(key, f"expected one of {', '.join(sorted(_DTYPES))}")
            build["dtype"] = _DTYPES[props[key].lower()]
        elif key == "option.logits_dtype":
            if props[key].lower() not in _LOGITS_DTYPES:
                raise fail(key, "expected fp16 or fp32")
            build["logits_dtype"] = _LOGITS_DTYPES[props[key].lower()]
        elif key == "option.use_fused_mlp":
            if flag(key):
                build["extra_build_args"] = (*build.get("extra_build_args", ()), "--use_fused_mlp", "enable")
        elif key == "option.kv_cache_free_gpu_mem_fraction":
            fraction = number(key, float)
            if not 0.0 < fraction <= 1.0:
                raise fail(key, "expected a fraction in (0, 1]")
            repository["kv_cache_free_gpu_mem_fraction"] = fraction
        elif key == "option.batch_scheduler_policy":
            if props[key] not in _POLICIES:
                raise fail(key, f"expected {' or '.join(_POLICIES)}")
            repository["batch_scheduler_policy"] = props[key]
        elif key == "option.enable_kv_cache_reuse":
            reuse = flag(key)
            repository["enable_kv_cache_reuse"] = reuse
            if reuse:
                # The backend refuses block reuse on engines built without paged context FMHA
                # ("When KV cache block reuse is set, model has to be built with paged context FMHA support").
                build["use_paged_context_fmha"] = True
        elif key == "option.quantize":
            raise fail(
                key,
                "LMI quantizes while loading (SmoothQuant/AWQ/FP8 calibration), which changes the weights; "
                "quantize offline and point option.model_id at the result, or use --weight-only-precision",
            )
        elif key == "option.rolling_batch" and props[key].lower() not in ("trtllm", "auto", "disable"):
            raise fail(key, "this file targets another LMI engine, not TensorRT-LLM")
        else:
            ignored.append(key)
    return LmiOptions(build=build, repository=repository, ignored=tuple(ignored))
