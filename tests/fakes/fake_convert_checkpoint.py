"""Stand-in for TensorRT-LLM's ``examples/<family>/convert_checkpoint.py``, for machines without a GPU.

The real script needs torch, CUDA and the model's weights. This one accepts the options the release in
``$FAKE_TRTLLM_VERSION`` (default 0.12.0) documents, rejects any other the way argparse does (exit code 2,
"unrecognized arguments"), checks the Hugging Face directory, and writes what the real script writes:
``config.json`` (architecture, dtype, ``mapping``, ``quantization``) and one ``rank<N>.safetensors`` per rank.
Standard library only; it must not import trtclient, so its flag table stays an independent reading of the
release notes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _version() -> tuple[int, int]:
    major, minor = os.environ.get("FAKE_TRTLLM_VERSION", "0.12.0").split(".")[:2]
    return int(major), int(minor)


# Weight-only precision -> QuantAlgo name stored in the checkpoint (TL quantization/mode.py).
QUANT_ALGOS = {
    "int8": "W8A16",
    "int4": "W4A16",
    "int8_gptq": "W8A16_GPTQ",
    "int4_gptq": "W4A16_GPTQ",
    "int4_awq": "W4A16_AWQ",
}


def parser_for(version: tuple[int, int]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="convert_checkpoint.py")
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--output_dir", default="tllm_checkpoint")
    dtypes = ["float32", "bfloat16", "float16"] + (["auto"] if version >= (0, 15) else [])  # RN 0.15
    parser.add_argument("--dtype", choices=dtypes, default="auto" if version >= (0, 15) else "float16")
    parser.add_argument("--tp_size", type=int, default=1)
    parser.add_argument("--pp_size", type=int, default=1)
    parser.add_argument("--use_weight_only", action="store_true")
    precisions = ["int8", "int4", "int4_awq", "int4_gptq"] + (["int8_gptq"] if version >= (0, 15) else [])
    parser.add_argument("--weight_only_precision", choices=precisions, default="int8")
    parser.add_argument("--per_group", action="store_true")
    parser.add_argument("--group_size", type=int, default=128)
    parser.add_argument("--quant_ckpt_path")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--load_model_on_cpu", action="store_true")
    return parser


def main(argv: list[str]) -> int:
    version = _version()
    args = parser_for(version).parse_args(argv)
    model_dir = Path(args.model_dir)
    try:
        hf_config = json.loads((model_dir / "config.json").read_text())
    except OSError as exc:
        print(f"[fake convert_checkpoint] cannot read the Hugging Face config: {exc}", file=sys.stderr)
        return 1
    if args.quant_ckpt_path and not Path(args.quant_ckpt_path).exists():
        print(f"[fake convert_checkpoint] {args.quant_ckpt_path} does not exist", file=sys.stderr)
        return 1
    world_size = args.tp_size * args.pp_size
    dtype = args.dtype if args.dtype != "auto" else str(hf_config.get("torch_dtype", "float16"))
    quant_algo = QUANT_ALGOS[args.weight_only_precision] if args.use_weight_only else None
    config = {
        "architecture": hf_config["architectures"][0],
        "dtype": dtype,
        "vocab_size": hf_config["vocab_size"],
        "hidden_size": hf_config["hidden_size"],
        "num_hidden_layers": hf_config["num_hidden_layers"],
        "num_attention_heads": hf_config["num_attention_heads"],
        "max_position_embeddings": hf_config["max_position_embeddings"],
        "mapping": {"world_size": world_size, "tp_size": args.tp_size, "pp_size": args.pp_size},
        "quantization": {
            "quant_algo": quant_algo,
            "group_size": args.group_size if args.per_group else None,
        },
    }
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    for rank in range(world_size):
        (out / f"rank{rank}.safetensors").write_bytes(b"fake weights of rank %d" % rank)
    print(f"[fake convert_checkpoint] wrote {world_size} rank(s) to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
