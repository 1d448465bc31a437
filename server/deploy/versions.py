"""Which spelling of each build flag a given TensorRT-LLM release understands.

The installed ``tensorrt_llm`` decides: its version is read from the package metadata (no import, so no
CUDA initialisation), and ``--trtllm-version`` overrides it for dry runs on machines without it.

Every rule below cites where it comes from. "RN x" means the TensorRT-LLM release notes
(``docs/source/release-notes.md``) of release x; "build.py" means ``tensorrt_llm/commands/build.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import metadata

__all__ = [
    "EARLIEST_SUPPORTED",
    "LATEST_KNOWN",
    "FlagSpelling",
    "TrtllmVersion",
    "installed_version",
    "spelling_for",
]

_VERSION_RE = re.compile(r"^\s*v?(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True, order=True)
class TrtllmVersion:
    """A TensorRT-LLM release number; pre-release suffixes (``rc2``, ``.dev…``) are kept for display only."""

    major: int
    minor: int
    patch: int = 0
    text: str = field(default="", compare=False)

    @classmethod
    def parse(cls, text: str) -> TrtllmVersion:
        """Parse ``0.12.0``, ``0.9.0.dev2024032600``, ``1.2.0rc2`` or ``v0.19``; else raise ``ValueError``."""
        match = _VERSION_RE.match(text)
        if match is None:
            raise ValueError(f"{text!r} is not a TensorRT-LLM version (expected e.g. 0.12.0 or 1.0.0)")
        major, minor, patch = match.groups()
        return cls(int(major), int(minor), int(patch or 0), text.strip())

    def __str__(self) -> str:
        return self.text or f"{self.major}.{self.minor}.{self.patch}"

    def at_least(self, text: str) -> bool:
        """Whether this release is ``text`` or newer."""
        return self >= TrtllmVersion.parse(text)


EARLIEST_SUPPORTED = TrtllmVersion.parse("0.9.0")
"""The first release whose unified convert_checkpoint + trtllm-build flow this module knows (Triton 24.04)."""

LATEST_KNOWN = TrtllmVersion.parse("1.2.0")
"""The newest release whose flags were checked; dry runs without ``tensorrt_llm`` spell commands for it."""


def installed_version() -> TrtllmVersion | None:
    """The version of the ``tensorrt_llm`` package in this Python, or ``None`` when it is not installed."""
    for name in ("tensorrt_llm", "tensorrt-llm"):
        try:
            return TrtllmVersion.parse(metadata.version(name))
        except metadata.PackageNotFoundError:
            continue
        except ValueError:
            return None
    return None


@dataclass(frozen=True)
class FlagSpelling:
    """The flags one TensorRT-LLM release uses for the options of a build spec."""

    version: TrtllmVersion
    sequence_flag: str
    """``--max_seq_len`` (input + output) or, before 0.11, ``--max_output_len`` (output only)."""
    paged_kv_flag: str
    """``--kv_cache_type`` (values paged/continuous) or ``--paged_kv_cache`` (values enable/disable)."""
    examples_subdir: str
    """Where ``<family>/convert_checkpoint.py`` lives inside a TensorRT-LLM checkout."""
    convert_dtypes: frozenset[str]
    weight_only_precisions: frozenset[str]

    def paged_kv_value(self, paged: bool) -> str:
        """The value that turns the paged KV cache on or off with :attr:`paged_kv_flag`."""
        if self.paged_kv_flag == "--kv_cache_type":
            return "paged" if paged else "continuous"
        return "enable" if paged else "disable"


def spelling_for(version: TrtllmVersion) -> FlagSpelling:
    """The flag spellings of ``version`` (releases newer than :data:`LATEST_KNOWN` use its spellings)."""
    # RN 0.11: "Deprecated max_output_len and added max_seq_len"; RN 0.12: "max_output_len is removed from
    # trtllm-build command, ... specify max_seq_len". 0.11 accepts both; the new spelling is used from 0.11.
    sequence_flag = "--max_seq_len" if version.at_least("0.11") else "--max_output_len"
    # build.py declares --kv_cache_type {continuous,paged,disabled} and keeps --paged_kv_cache only as a
    # "Deprecated" alias; RN 0.14 already fixes a kv_cache_type issue, so 0.14 has it. The old flag is used
    # up to 0.13, which every release accepts (it stays as the alias), so the cut-off errs on the safe side.
    paged_kv_flag = "--kv_cache_type" if version.at_least("0.14") else "--paged_kv_cache"
    # RN 0.20 points at examples/models/core/qwen/README.md where RN 0.19 still points at
    # examples/mixtral/README.md: the per-model example folders moved under models/core in 0.20.
    examples_subdir = "models/core" if version.at_least("0.20") else ""
    # RN 0.15: "auto is used as the default value for --dtype option in quantize and checkpoints conversion".
    dtypes = {"float16", "bfloat16", "float32"} | ({"auto"} if version.at_least("0.15") else set())
    # convert_checkpoint.py --weight_only_precision choices (int8 default); RN 0.15: "Added INT8 support for
    # GPTQ quantization".
    precisions = {"int8", "int4", "int4_gptq", "int4_awq"} | (
        {"int8_gptq"} if version.at_least("0.15") else set()
    )
    return FlagSpelling(
        version=version,
        sequence_flag=sequence_flag,
        paged_kv_flag=paged_kv_flag,
        examples_subdir=examples_subdir,
        convert_dtypes=frozenset(dtypes),
        weight_only_precisions=frozenset(precisions),
    )
