"""The scenarios' command line: Locust options of the Triton user, shared parsers and the tutorial's
request defaults.
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent monkey-patches the standard library on import)

# isort: split

import argparse
import json
import logging
import sys
import types
from collections.abc import Callable
from typing import Any

from locust import events
from locust.env import Environment

from trtclient.cli.common import UsageError, parse_seconds, unrecognized
from trtclient.constants import CLI_MAX_TOKENS
from trtclient.loadtest.lora import Adapter, parse_lora
from trtclient.loadtest.schedule import Rate
from trtclient.loadtest.shared_prefix import SharedPrefixSpec, parse_shared_prefix
from trtclient.loadtest.workload import WorkloadError

__all__ = [
    "DEFAULT_RATE",
    "OPEN_LOOP_USERS",
    "TUTORIAL_END_ID",
    "TUTORIAL_MAX_TOKENS",
    "TUTORIAL_PAD_ID",
    "TUTORIAL_PROMPT",
    "TUTORIAL_WORDS",
    "add_rate_arguments",
    "add_trace_arguments",
    "headers_of",
    "non_negative_float",
    "options_of",
    "positive_float",
    "positive_int",
    "rate_shape",
    "verify_of",
]

log = logging.getLogger("trtclient.locust")

#: The tutorial's request (tensorrtllm_backend docs/llama.md, "Run several requests at the same time":
#: ``{"text_input": "What is machine learning?", "max_tokens": 20, "bad_words": "", "stop_words": "",
#: "pad_id": 2, "end_id": 2}``).
TUTORIAL_PROMPT = "What is machine learning?"
TUTORIAL_MAX_TOKENS = CLI_MAX_TOKENS  # the same default as trtclient generate and bench
TUTORIAL_END_ID = 2
TUTORIAL_PAD_ID = 2
TUTORIAL_WORDS = {"bad_words": "", "stop_words": ""}


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(_number(text, int))
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    value = float(_number(text, float))
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a number >= 0."""
    value = float(_number(text, float))
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _optional_id(text: str) -> int | None:
    if text.strip().lower() in ("", "none", "off"):
        return None
    return int(_number(text, int))


def _param(text: str) -> list[Any]:
    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return [name.strip(), value]


def _header(text: str) -> tuple[str, str]:
    """argparse type: ``NAME:VALUE``; errors show the name only, never the value."""
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not name or any(c.isspace() for c in name):
        raise argparse.ArgumentTypeError(
            f"expected NAME:VALUE, got a header named {name if sep else '(no :)'!r}"
        )
    if any(c in value for c in "\r\n"):
        raise argparse.ArgumentTypeError(f"the value of header {name!r} contains a line break")
    return name, value


def _shared_prefix(text: str) -> SharedPrefixSpec:
    """argparse type: ``N:P`` (N prefixes of P tokens)."""
    try:
        return parse_shared_prefix(text)
    except WorkloadError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seconds(text: str) -> float:
    """argparse type: a duration (``2``, ``500ms``, ``1m``)."""
    try:
        return parse_seconds(text, "--think-time")
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _lora(text: str) -> list[Adapter]:
    """argparse type: ``ID:WEIGHT,...``, adapters the server already holds, by ``lora_task_id``."""
    try:
        adapters = parse_lora(text)
    except WorkloadError as exc:  # argparse names the flag itself: "argument --lora: ..."
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--lora: ")) from None
    named = [a.label for a in adapters if a.sends_weights]
    if named:
        raise argparse.ArgumentTypeError(
            f"{named[0]!r} is a name, and a named adapter is introduced with FP16 lora_weights, "
            "which the scenarios' wire (Triton's HTTP generate endpoint) cannot carry: give the "
            "lora_task_id of an adapter the server holds (e.g. --lora 12:3,40:1), or introduce it first with "
            "trtclient bench --transport grpc --lora NAME"
        )
    return adapters


def headers_of(options: argparse.Namespace) -> dict[str, str]:
    """The ``--header`` options as a mapping."""
    return dict(getattr(options, "header", None) or [])


def verify_of(options: argparse.Namespace) -> bool | str:
    """TLS verification: a CA bundle from ``--cacert``, else the system's CAs."""
    return str(options.cacert) if getattr(options, "cacert", "") else True


def _number(text: str, kind: Callable[[str], float]) -> float:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


UNRECOGNIZED = "unrecognized arguments: "


def _usage_error(parser: argparse.ArgumentParser, message: str) -> None:
    """The parser's usage and one error line, exit code 2, as ``trtclient`` commands say it: an
    unknown flag gets ``(did you mean --max-tokens?)`` from every option the scenario knows."""
    if message.startswith(UNRECOGNIZED):
        extras = message[len(UNRECOGNIZED) :].split()
        choices = [s for action in parser._actions for s in action.option_strings]
        message = unrecognized(extras, choices)
    if parser.usage == argparse.SUPPRESS:  # Locust's own parser has its usage in the description
        sys.stderr.write("usage: locust -f LOCUSTFILE [options] [UserClass ...] (--help lists them)\n")
    else:
        parser.print_usage(sys.stderr)
    parser.exit(2, f"locust: error: {message}\n")  # "__main__.py" under python -m locust


def _strict(parser: argparse.ArgumentParser) -> None:
    """No silent abbreviations (``--max-token`` is not ``--max-tokens``) and trtclient's wording for
    unknown flags, on the parser Locust builds for the whole command line."""
    parser.allow_abbrev = False
    parser.error = types.MethodType(_usage_error, parser)  # type: ignore[method-assign]


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any, **_kw: Any) -> None:
    _strict(parser)
    parser.add_argument("--model", default="ensemble", help="Triton model to load-test (default: ensemble)")
    parser.add_argument("--prompt", default=TUTORIAL_PROMPT, help=f"prompt (default: {TUTORIAL_PROMPT!r})")
    parser.add_argument(
        "--max-tokens",
        type=positive_int,
        default=TUTORIAL_MAX_TOKENS,
        help=f"max_tokens per request (default: {TUTORIAL_MAX_TOKENS})",
    )
    parser.add_argument(
        "--end-id",
        type=_optional_id,
        default=TUTORIAL_END_ID,
        help=f"end_id to send, 'none' to leave it out (default: {TUTORIAL_END_ID}, the tutorial's)",
        include_in_web_ui=False,  # not editable in the web UI's start form
    )
    parser.add_argument(
        "--pad-id",
        type=_optional_id,
        default=TUTORIAL_PAD_ID,
        help=f"pad_id to send, 'none' to leave it out (default: {TUTORIAL_PAD_ID}, the tutorial's)",
        include_in_web_ui=False,  # not editable in the web UI's start form
    )
    parser.add_argument(
        "--force-output-length",
        action="store_true",
        default=False,
        help="send min_tokens = max_tokens so every answer has exactly max_tokens tokens",
    )
    parser.add_argument(
        "--param",
        type=_param,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra model input, VALUE parsed as JSON when it can be (repeatable)",
        include_in_web_ui=False,  # not editable in the web UI's start form
    )
    parser.add_argument(
        "--header",
        type=_header,
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="HTTP header sent with every request, e.g. an API key (repeatable; values are never shown)",
        include_in_web_ui=False,  # not editable in the web UI's start form, and never displayed there
    )
    parser.add_argument(
        "--cacert",
        default="",
        metavar="FILE",
        help="CA bundle to verify an https server with (default: the system's CAs)",
        include_in_web_ui=False,
    )
    parser.add_argument(
        "--request-timeout",
        type=positive_float,
        default=300.0,
        help="seconds without a byte from the server before a request fails (default: 300)",
    )
    parser.add_argument(
        "--read-stamps",
        action="store_true",
        default=False,
        help="stamp events when they are read, not with the kernel's arrival time (the default on Linux)",
        include_in_web_ui=False,  # not editable in the web UI's start form
    )
    parser.add_argument(
        "--server-profile",
        default="orin-int4",
        help="timing profile of the embedded Triton started when --host is not given (default: orin-int4)",
        include_in_web_ui=False,  # not editable in the web UI's start form
    )
    parser.add_argument(
        "--shared-prefix",
        type=_shared_prefix,
        default=None,
        metavar="N:P",
        help="prompts of N shared prefixes of P tokens plus a unique suffix of --input-tokens tokens "
        "(instead of --prompt), for KV-cache reuse",
        include_in_web_ui=False,  # not editable in the web UI's start form
    )
    parser.add_argument(
        "--input-tokens",
        type=positive_int,
        default=32,
        help="with --shared-prefix: tokens of each prompt's unique suffix; with --turns: of each user "
        "message (default: 32)",
        include_in_web_ui=False,  # not editable in the web UI's start form
    )
    parser.add_argument(
        "--turns",
        type=positive_int,
        default=None,
        metavar="T",
        help="concurrency.py: each user holds conversations of T turns, each turn's prompt the history "
        "plus a new message of --input-tokens tokens, answers of --max-tokens tokens",
        include_in_web_ui=False,  # not editable in the web UI's start form
    )
    parser.add_argument(
        "--think-time",
        type=_seconds,
        default=None,
        metavar="S",
        help="with --turns: pause after each answer before the next turn (2, 500ms; default: 0)",
        include_in_web_ui=False,  # not editable in the web UI's start form
    )
    parser.add_argument(
        "--lora",
        type=_lora,
        default=None,
        metavar="ID:WEIGHT,...",
        help="LoRA mix: each request takes an adapter by weight, sent as lora_task_id (adapters the server "
        "holds; adapter names need gRPC, see docs/locust.md)",
        include_in_web_ui=False,  # not editable in the web UI's start form
    )
    parser.add_argument(
        "--tokenizer",
        default="",
        metavar="DIR",
        help="with --shared-prefix, --turns or --trace: Hugging Face tokenizer dir the token counts use "
        "(default: the embedded server's)",
        include_in_web_ui=False,  # not editable in the web UI's start form
    )
    parser.add_argument(
        "--records",
        default="",
        metavar="FILE",
        help="one JSONL record per request, with the run's id (workers write FILE.workerN)",
        include_in_web_ui=False,  # not editable in the web UI's start form
    )
    parser.add_argument(
        "--append",
        action="store_true",
        help="add to --records FILE instead of replacing it",
        include_in_web_ui=False,
    )
    parser.add_argument(
        "--max-failures",
        default="0",
        metavar="N|N%",
        help="failed requests tolerated before the exit code is 3 (default: 0; see trtclient's exit codes)",
        include_in_web_ui=False,
    )


DEFAULT_RATE = 5.0
#: Users (the ceiling on requests in flight) of the open-loop scenarios when -u is not given.
OPEN_LOOP_USERS = 64


def add_rate_arguments(parser: Any) -> None:
    """``--rate``, ``--arrival``, ``--burstiness``, ``--seed`` (shared with ramp.py)."""
    parser.add_argument(
        "--rate",
        type=positive_float,
        default=DEFAULT_RATE,
        help=f"requests per second in total, all workers together (default: {DEFAULT_RATE:g})",
    )
    parser.add_argument(
        "--arrival",
        choices=("constant", "poisson", "gamma"),
        default="poisson",
        help="gaps between arrivals (default: poisson)",
    )
    parser.add_argument(
        "--burstiness",
        type=positive_float,
        default=1.0,
        help="gamma shape with --arrival gamma: 1 Poisson, <1 burstier, >1 smoother (default: 1)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the arrival times (default: 0)")


def add_trace_arguments(parser: Any) -> None:
    """``--trace``, ``--trace-speed``, ``--seed`` (trace.py)."""
    parser.add_argument(
        "--trace",
        default="",
        metavar="FILE",
        help="JSONL trace to replay open loop (Mooncake: timestamp ms, input_length, output_length, "
        "hash_ids), readable at this path on every worker",
        include_in_web_ui=False,
    )
    parser.add_argument(
        "--trace-speed",
        type=positive_float,
        default=1.0,
        metavar="X",
        help="replay the trace X times as fast (default: 1)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the prompts' text (default: 0)")


def rate_shape(options: argparse.Namespace) -> Rate:
    """The open-loop shape from the command line."""
    return Rate(rate=options.rate, arrival=options.arrival, burstiness=options.burstiness)


def options_of(environment: Environment) -> argparse.Namespace:
    """Locust's parsed command line (always there when Locust runs a locustfile)."""
    options = environment.parsed_options
    if not isinstance(options, argparse.Namespace):
        raise RuntimeError("these scenarios run under the locust command (no parsed options)")
    return options
