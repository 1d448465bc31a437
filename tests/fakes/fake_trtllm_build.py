"""Stand-in for TensorRT-LLM's ``trtllm-build`` console script, for machines without a GPU.

The real command compiles TensorRT engines on a GPU. This one parses the options that the release in
``$FAKE_TRTLLM_VERSION`` (default 0.12.0) documents — a flag the release does not know fails as in the real
tool, argparse's exit code 2 with "unrecognized arguments" — checks the checkpoint directory, and writes
what the real command writes: ``config.json`` in the engine layout (``version``, ``pretrained_config`` with
``mapping``, ``build_config`` with ``plugin_config``) and one ``rank<N>.engine`` per rank.
Standard library only; it must not import trtclient, so its flag table stays an independent reading of the
release notes (RN x = TensorRT-LLM docs/source/release-notes.md of release x).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

SWITCH = ("enable", "disable")


def _version() -> tuple[str, tuple[int, int]]:
    text = os.environ.get("FAKE_TRTLLM_VERSION", "0.12.0")
    major, minor = text.split(".")[:2]
    return text, (int(major), int(minor))


def parser_for(version: tuple[int, int]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trtllm-build")
    parser.add_argument("--checkpoint_dir", required=True)
    parser.add_argument("--output_dir", default="engine_outputs")
    parser.add_argument("--max_batch_size", type=int)
    parser.add_argument("--max_input_len", type=int, default=1024)
    parser.add_argument("--max_beam_width", type=int, default=1)
    parser.add_argument("--max_num_tokens", type=int)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--log_level", default="info")
    parser.add_argument("--logits_dtype", choices=["float16", "float32"])
    if version < (0, 12):  # RN 0.12: max_output_len removed (deprecated since 0.11)
        parser.add_argument("--max_output_len", type=int)
    if version >= (0, 11):  # RN 0.11: max_seq_len added
        parser.add_argument("--max_seq_len", type=int)
    if version < (0, 11):  # RN 0.11: --weight_only_precision removed from trtllm-build
        parser.add_argument("--weight_only_precision")
    if version < (
        0,
        12,
    ):  # RN 0.12: tp_size/pp_size/use_custom_all_reduce removed, multi_block_mode to runtime
        parser.add_argument("--tp_size", type=int)
        parser.add_argument("--pp_size", type=int)
        parser.add_argument("--use_custom_all_reduce", choices=SWITCH)
        parser.add_argument("--multi_block_mode", choices=SWITCH)
    if version >= (0, 12):  # RN 0.12: --fast_build added
        parser.add_argument("--fast_build", action="store_true")
    if version < (0, 16):  # RN 0.16: enable_xqa removed
        parser.add_argument("--enable_xqa", choices=SWITCH)
    if version >= (0, 14):  # kv_cache_type exists by 0.14 (RN 0.14 fixes an issue of it)
        parser.add_argument("--kv_cache_type", choices=["continuous", "paged", "disabled"])
    parser.add_argument("--paged_kv_cache", choices=SWITCH)  # kept as a deprecated alias later on
    plugins = parser.add_argument_group("plugin config")
    plugins.add_argument("--gemm_plugin")
    plugins.add_argument("--gpt_attention_plugin")
    plugins.add_argument("--remove_input_padding", choices=SWITCH)
    plugins.add_argument("--context_fmha", choices=SWITCH)
    plugins.add_argument("--use_paged_context_fmha", choices=SWITCH)
    plugins.add_argument("--tokens_per_block", type=int)
    plugins.add_argument("--use_fused_mlp", choices=SWITCH)
    return parser


def main(argv: list[str]) -> int:
    text, version = _version()
    args = parser_for(version).parse_args(argv)
    checkpoint = Path(args.checkpoint_dir)
    try:
        pretrained = json.loads((checkpoint / "config.json").read_text())
    except OSError as exc:
        print(f"[fake trtllm-build] not a TensorRT-LLM checkpoint: {exc}", file=sys.stderr)
        return 1
    world_size = pretrained["mapping"]["world_size"]
    missing = [r for r in range(world_size) if not (checkpoint / f"rank{r}.safetensors").exists()]
    if missing:
        print(f"[fake trtllm-build] checkpoint lacks ranks {missing}", file=sys.stderr)
        return 1
    kv_type = getattr(args, "kv_cache_type", None)
    paged = kv_type == "paged" if kv_type else args.paged_kv_cache != "disable"
    if args.use_paged_context_fmha == "enable" and (not paged or args.context_fmha == "disable"):
        print(
            "[fake trtllm-build] paged context FMHA needs the paged KV cache and context FMHA",
            file=sys.stderr,
        )
        return 1
    build_config: dict[str, object] = {
        # RN 0.11: default max_batch_size 256; RN 0.14: 2048.
        "max_batch_size": args.max_batch_size or (2048 if version >= (0, 14) else 256),
        "max_input_len": args.max_input_len,
        "max_beam_width": args.max_beam_width,
        "max_num_tokens": args.max_num_tokens or 8192,
        "plugin_config": {
            "gemm_plugin": args.gemm_plugin,
            "gpt_attention_plugin": args.gpt_attention_plugin or "auto",
            "remove_input_padding": args.remove_input_padding != "disable",
            "context_fmha": args.context_fmha != "disable",
            "use_paged_context_fmha": args.use_paged_context_fmha == "enable",
            "paged_kv_cache": paged,
            "tokens_per_block": args.tokens_per_block or 64,
        },
    }
    if version >= (0, 11):
        # RN 0.11: max_seq_len defaults to what the Hugging Face config allows.
        build_config["max_seq_len"] = (
            getattr(args, "max_seq_len", None) or pretrained["max_position_embeddings"]
        )
    else:
        build_config["max_output_len"] = args.max_output_len or 1024
    if version >= (0, 14):
        build_config["kv_cache_type"] = "PAGED" if paged else "CONTINUOUS"
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    engine_config = {"version": text, "pretrained_config": pretrained, "build_config": build_config}
    (out / "config.json").write_text(json.dumps(engine_config, indent=2))
    for rank in range(world_size):
        (out / f"rank{rank}.engine").write_bytes(b"fake engine of rank %d" % rank)
    print(f"[fake trtllm-build] wrote {world_size} engine(s) to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
