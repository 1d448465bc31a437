"""The two commands that turn a Hugging Face checkpoint into a TensorRT-LLM engine, and running them.

``convert_checkpoint.py`` (from the ``examples/<family>`` folder of a TensorRT-LLM checkout; it is not
installed with the wheel) writes a TensorRT-LLM checkpoint, deciding tensor/pipeline parallelism and
weight-only quantization; ``trtllm-build`` (a console script of the wheel) compiles it into
``config.json`` + ``rank<N>.engine`` per rank. Flag spellings follow the release (see :mod:`.versions`).
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from trtclient.errors import LauncherError, SetupError
from trtclient.server.deploy.spec import BuildSpec, SpecError
from trtclient.server.deploy.versions import (
    EARLIEST_SUPPORTED,
    LATEST_KNOWN,
    FlagSpelling,
    TrtllmVersion,
    installed_version,
    spelling_for,
)

__all__ = [
    "PROVENANCE_FILE",
    "BuildPlan",
    "BuildStepError",
    "Step",
    "Tools",
    "build_command",
    "convert_command",
    "format_command",
    "locate_tools",
    "plan_build",
    "resolve_version",
    "run_build",
    "verify_engine_dir",
]

PROVENANCE_FILE = "trtclient-build.json"
"""Written into the engine directory: the version, the spec and the exact commands that built it."""

_TOOLS_REMOVED = (
    "the TensorRT engine flow (convert_checkpoint.py, trtllm-build) was removed from TensorRT-LLM's main "
    f"line in 2026, so use a release that still ships it (checked up to {LATEST_KNOWN})"
)

Progress = Callable[[str], None]


class BuildStepError(LauncherError):
    """A build step (convert_checkpoint.py or trtllm-build) failed or left an incomplete engine."""


@dataclass(frozen=True)
class Step:
    """One command of a build."""

    name: str
    argv: tuple[str, ...]


@dataclass(frozen=True)
class BuildPlan:
    """The commands of one build, for one TensorRT-LLM release."""

    version: TrtllmVersion
    version_note: str
    steps: tuple[Step, ...]

    def shell(self) -> str:
        """The plan as a shell script: a comment naming the release, then one command per step."""
        lines = [f"# {self.version_note}"]
        for step in self.steps:
            lines.append(format_command(step.argv))
        return "\n".join(lines)


@dataclass(frozen=True)
class Tools:
    """Where the build tools are: the Python running convert_checkpoint.py, the script, trtllm-build."""

    python: str
    convert_script: Path
    trtllm_build: str


def format_command(argv: Sequence[str]) -> str:
    """Quote ``argv`` for a shell: the program first, then one ``--flag value`` group per continued line."""
    groups: list[list[str]] = []
    for arg in argv:
        if not groups or arg.startswith("-"):
            groups.append([arg])
        else:
            groups[-1].append(arg)
    return " \\\n    ".join(shlex.join(group) for group in groups)


def resolve_version(override: str | None, *, dry_run: bool) -> tuple[TrtllmVersion, str]:
    """The release to spell commands for, and a note saying where it came from."""
    if override:
        try:
            version = TrtllmVersion.parse(override)
        except ValueError as exc:
            raise SpecError(f"--trtllm-version: {exc}") from None
        note = f"tensorrt_llm {version} (from --trtllm-version)"
    else:
        found = installed_version()
        if found is None:
            if not dry_run:
                raise SetupError(
                    f"tensorrt_llm is not installed in this Python ({sys.executable}); on the GPU host "
                    "install it (pip install 'trtclient[trtllm]', or use the TensorRT-LLM container), "
                    "or name its release with --trtllm-version and its tools with --python/--trtllm-build; "
                    "--dry-run prints the commands without it"
                )
            return LATEST_KNOWN, (
                f"tensorrt_llm is not installed here: commands spelled for {LATEST_KNOWN} "
                "(pass --trtllm-version to pick the release of the GPU host)"
            )
        version, note = found, f"tensorrt_llm {found} (installed)"
    if version < EARLIEST_SUPPORTED:
        raise SpecError(
            f"tensorrt_llm {version} predates the convert_checkpoint + trtllm-build flow this command drives "
            f"(it starts at {EARLIEST_SUPPORTED}); upgrade TensorRT-LLM"
        )
    if version > LATEST_KNOWN:
        note += f"; newer than {LATEST_KNOWN}, the newest release checked, whose spellings are used"
    return version, note


def locate_tools(
    spec: BuildSpec,
    spelling: FlagSpelling,
    *,
    python: str | None = None,
    trtllm_build: str | None = None,
    check: bool = True,
) -> Tools:
    """Find convert_checkpoint.py and trtllm-build; ``check=False`` (dry runs) puts in placeholders."""
    script = _find_convert_script(spec, spelling)
    if script is None:
        if check and spec.convert_script is not None:
            raise SetupError(f"convert_script {spec.convert_script} does not exist")
        if check and spec.examples_dir is not None:
            raise SetupError(
                f"no {spec.model_family}/convert_checkpoint.py under {spec.examples_dir} (looked in the "
                "examples/<family> and examples/models/core/<family> layouts); check --examples-dir and "
                "--model-family"
            )
        if check:
            tag = f"v{spelling.version.major}.{spelling.version.minor}.{spelling.version.patch}"
            raise SetupError(
                "convert_checkpoint.py is not installed with tensorrt_llm: it lives in the examples of a "
                f"TensorRT-LLM checkout of the same release (git clone --branch {tag} "
                "https://github.com/NVIDIA/TensorRT-LLM); pass --examples-dir TensorRT-LLM/examples "
                "or --convert-script PATH"
            )
        examples = spec.examples_dir or Path("<TensorRT-LLM>/examples")
        script = (
            spec.convert_script
            or examples / spelling.examples_subdir / spec.model_family / "convert_checkpoint.py"
        )
    build_tool = (
        trtllm_build or shutil.which("trtllm-build") or _beside(python or sys.executable, "trtllm-build")
    )
    if check and (build_tool is None or shutil.which(build_tool) is None):
        where = "not found on PATH" if build_tool is None else f"at {build_tool} is not an executable"
        raise SetupError(
            f"trtllm-build {where}: install tensorrt_llm on the GPU host or pass --trtllm-build PATH; "
            + _TOOLS_REMOVED
        )
    return Tools(
        python=python or sys.executable, convert_script=script, trtllm_build=build_tool or "trtllm-build"
    )


def _beside(python: str, name: str) -> str | None:
    candidate = Path(python).parent / name
    return str(candidate) if candidate.is_file() else None


def _find_convert_script(spec: BuildSpec, spelling: FlagSpelling) -> Path | None:
    if spec.convert_script is not None:
        return spec.convert_script if spec.convert_script.is_file() else None
    if spec.examples_dir is None:
        return None
    roots = [spec.examples_dir, spec.examples_dir / "examples"]
    layouts = [spelling.examples_subdir, "models/core", ""]  # the release's layout first, then the others
    for root in roots:
        for layout in layouts:
            candidate = root / layout / spec.model_family / "convert_checkpoint.py"
            if candidate.is_file():
                return candidate
    return None


def convert_command(spec: BuildSpec, spelling: FlagSpelling, tools: Tools) -> list[str]:
    """``python convert_checkpoint.py ...`` for ``spec``."""
    if spec.dtype not in spelling.convert_dtypes:
        raise SpecError(
            f"dtype {spec.dtype}: tensorrt_llm {spelling.version} accepts {_choices(spelling.convert_dtypes)}"
        )
    argv = [tools.python, str(tools.convert_script)]
    argv += ["--model_dir", str(spec.model_dir), "--output_dir", str(spec.resolved_checkpoint_dir)]
    argv += ["--dtype", spec.dtype, "--tp_size", str(spec.tp_size), "--pp_size", str(spec.pp_size)]
    if spec.use_weight_only:
        argv.append("--use_weight_only")
    if spec.weight_only_precision:
        if spec.weight_only_precision not in spelling.weight_only_precisions:
            raise SpecError(
                f"weight_only_precision {spec.weight_only_precision}: tensorrt_llm {spelling.version} "
                f"accepts {_choices(spelling.weight_only_precisions)}"
            )
        argv += ["--weight_only_precision", spec.weight_only_precision]
    if spec.per_group:
        argv.append("--per_group")
    argv += _option("--group_size", spec.group_size)
    argv += _option("--quant_ckpt_path", spec.quant_ckpt_path)
    argv += _option("--workers", spec.convert_workers)
    return argv + list(spec.extra_convert_args)


def build_command(spec: BuildSpec, spelling: FlagSpelling, tools: Tools) -> list[str]:
    """``trtllm-build ...`` for ``spec``."""
    argv = [tools.trtllm_build, "--checkpoint_dir", str(spec.resolved_checkpoint_dir)]
    argv += ["--output_dir", str(spec.engine_dir)]
    argv += _option("--gemm_plugin", spec.gemm_plugin)
    argv += _option("--gpt_attention_plugin", spec.gpt_attention_plugin)
    argv += _switch("--remove_input_padding", spec.remove_input_padding)
    if spec.paged_kv_cache is not None:
        argv += [spelling.paged_kv_flag, spelling.paged_kv_value(spec.paged_kv_cache)]
    argv += _switch("--context_fmha", spec.context_fmha)
    argv += _switch("--use_paged_context_fmha", spec.use_paged_context_fmha)
    argv += _option("--tokens_per_block", spec.tokens_per_block)
    argv += _option("--max_batch_size", spec.max_batch_size)
    argv += _option("--max_input_len", spec.max_input_len)
    argv += _sequence_limit(spec, spelling)
    argv += _option("--max_num_tokens", spec.max_num_tokens)
    argv += _option("--max_beam_width", spec.max_beam_width)
    argv += _option("--logits_dtype", spec.logits_dtype)
    argv += _option("--workers", spec.workers)
    return argv + list(spec.extra_build_args)


def _sequence_limit(spec: BuildSpec, spelling: FlagSpelling) -> list[str]:
    if spec.max_seq_len is None and spec.max_output_len is None:
        return []
    seq, out = spec.sequence_limits()
    if spelling.sequence_flag == "--max_seq_len":
        if seq is None:
            raise SpecError(
                f"max_output_len: tensorrt_llm {spelling.version} bounds prompt + output with --max_seq_len; "
                "also give max_input_len (max_seq_len = max_input_len + max_output_len) or give max_seq_len"
            )
        return ["--max_seq_len", str(seq)]
    if out is None:
        raise SpecError(
            f"max_seq_len: tensorrt_llm {spelling.version} (before 0.11) bounds the output alone with "
            "--max_output_len; also give max_input_len, or give max_output_len"
        )
    return ["--max_output_len", str(out)]


def plan_build(spec: BuildSpec, version: TrtllmVersion, tools: Tools, *, version_note: str = "") -> BuildPlan:
    """The checked commands of ``spec`` for ``version``."""
    spelling = spelling_for(version)
    steps = (
        Step("convert_checkpoint.py", tuple(convert_command(spec, spelling, tools))),
        Step("trtllm-build", tuple(build_command(spec, spelling, tools))),
    )
    return BuildPlan(version=version, version_note=version_note or f"tensorrt_llm {version}", steps=steps)


def run_build(plan: BuildPlan, spec: BuildSpec, *, progress: Progress | None = None) -> Path:
    """Run the plan's steps in order (their output goes to ours), check the engine, record provenance."""
    report: Progress = progress or (lambda message: None)
    if not (spec.model_dir / "config.json").is_file():
        raise SpecError(
            f"model_dir {spec.model_dir} has no config.json; point it at a Hugging Face checkpoint directory "
            "(downloads are not made for you)"
        )
    for step in plan.steps:
        report(f"running {step.name}")
        try:
            result = subprocess.run(step.argv, check=False)
        except OSError as exc:
            raise BuildStepError(
                f"{step.name} could not be started ({step.argv[0]}): {exc.strerror or exc}"
            ) from exc
        if result.returncode != 0:
            raise BuildStepError(
                f"{step.name} failed with exit code {result.returncode} (its output is above); "
                f"the command was:\n{format_command(step.argv)}"
            )
    verify_engine_dir(spec.engine_dir, spec.world_size)
    record = {
        "trtllm_version": str(plan.version),
        "spec": spec.model_dump(mode="json"),
        "commands": [list(step.argv) for step in plan.steps],
    }
    (spec.engine_dir / PROVENANCE_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return spec.engine_dir


def verify_engine_dir(engine_dir: Path, world_size: int) -> None:
    """Check that ``engine_dir`` holds ``config.json`` for ``world_size`` ranks and one engine per rank."""
    config_path = engine_dir / "config.json"
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise BuildStepError(f"trtllm-build left no readable {config_path}: {exc}") from exc
    mapping = config.get("pretrained_config", {}).get("mapping", {}) if isinstance(config, dict) else {}
    built_for = mapping.get("world_size") if isinstance(mapping, dict) else None
    if built_for is not None and built_for != world_size:
        raise BuildStepError(
            f"{config_path} is for world size {built_for}, the spec asks for {world_size} "
            "(tp_size × pp_size); was the checkpoint directory left over from another build?"
        )
    missing = [
        f"rank{rank}.engine"
        for rank in range(world_size)
        if not (engine_dir / f"rank{rank}.engine").is_file()
    ]
    if missing:
        raise BuildStepError(f"trtllm-build finished but {engine_dir} lacks {', '.join(missing)}")


def _option(flag: str, value: object) -> list[str]:
    return [] if value is None else [flag, str(value)]


def _switch(flag: str, value: bool | None) -> list[str]:
    return [] if value is None else [flag, "enable" if value else "disable"]


def _choices(values: frozenset[str]) -> str:
    return ", ".join(sorted(values))
