"""``trtclient generate``: send one prompt to Triton's generate endpoint and print the answer.

The tutorials' ``curl -X POST .../v2/models/ensemble/generate -d '{...}'``, done right: inputs are
checked against the model before anything is sent, ``--stream`` prints tokens as they arrive, an
error inside a 200 stream is an error, and ``--timing`` shows time to first token and the total.

Examples::

    trtclient generate "What is machine learning?" --url http://127.0.0.1:8000 --max-tokens 20
    trtclient generate "What is machine learning?" --url http://127.0.0.1:8000 --stream --timing
    trtclient generate "Hi" --url 127.0.0.1:8001 --transport grpc --input exclude_input_in_output=true
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from trtclient.cli.common import UsageError
from trtclient.constants import CLI_MAX_TOKENS

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``generate`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "generate",
        help="send one prompt to a Triton generate endpoint and print the answer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("prompt", help="the prompt (text_input)")
    server = parser.add_argument_group("server")
    server.add_argument(
        "--url",
        default=os.environ.get("TRITON_URL"),
        help="server address, e.g. http://127.0.0.1:8000 (gRPC: 127.0.0.1:8001); default $TRITON_URL",
    )
    server.add_argument("--model", default="ensemble", help="model to call (default: ensemble)")
    server.add_argument(
        "--transport", choices=("http", "grpc"), default="http", help="front-end (default: http)"
    )
    server.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="extra request header, repeatable (e.g. Triton's restricted-API key)",
    )
    server.add_argument(
        "--timeout", type=float, default=300.0, help="connect/read timeout, seconds (default 300)"
    )
    server.add_argument("--cacert", help="CA bundle for https")
    server.add_argument("--insecure", action="store_true", help="do not verify the server's TLS certificate")
    server.add_argument("--retries", type=int, default=0, help="retries of connection failures and 503s")
    request = parser.add_argument_group("request")
    request.add_argument(
        "--max-tokens",
        type=int,
        default=CLI_MAX_TOKENS,
        help=f"tokens to generate (default: {CLI_MAX_TOKENS})",
    )
    request.add_argument("--min-tokens", type=int, help="fewest tokens to generate")
    request.add_argument("--temperature", type=float)
    request.add_argument("--top-k", type=int)
    request.add_argument("--top-p", type=float)
    request.add_argument("--seed", type=int)
    request.add_argument("--stop-word", action="append", dest="stop_words", help="stop word, repeatable")
    request.add_argument("--bad-word", action="append", dest="bad_words", help="banned word, repeatable")
    request.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any other model input; VALUE is JSON if it parses (true, 3, [1,2]), else text",
    )
    output = parser.add_argument_group("output")
    output.add_argument(
        "--stream", action="store_true", help="use generate_stream and print tokens as they come"
    )
    output.add_argument(
        "--json", action="store_true", help="print the response JSON (one line per streamed event)"
    )
    output.add_argument("--timing", action="store_true", help="print first-token and total time on stderr")
    parser.set_defaults(handler=run)


def _inputs(args: argparse.Namespace) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    for flag, key in (
        ("max_tokens", "max_tokens"),
        ("min_tokens", "min_tokens"),
        ("temperature", "temperature"),
        ("top_k", "top_k"),
        ("top_p", "top_p"),
        ("seed", "seed"),
        ("stop_words", "stop_words"),
        ("bad_words", "bad_words"),
    ):
        value = getattr(args, flag)
        if value is not None:
            inputs[key] = value
    for item in args.input:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--input expects NAME=VALUE, got {item!r}")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        inputs[name.strip()] = value
    return inputs


def _headers(items: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition(":")
        if not sep:
            name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError("--header expects 'NAME: VALUE' (the value is not shown here)")
        headers[name.strip()] = value.strip()
    return headers


def run(args: argparse.Namespace) -> int:
    """Send the request and print the answer."""
    from trtclient import TritonClient
    from trtclient.options import Timeout
    from trtclient.timing import now_ns

    if not args.url:
        raise UsageError(
            "no server given: pass --url (e.g. --url http://127.0.0.1:8000) or set TRITON_URL; "
            "`trtclient serve` starts a local server and prints its URL"
        )
    if args.timeout <= 0:
        raise UsageError(f"--timeout must be > 0, got {args.timeout}")
    if args.retries < 0:
        raise UsageError(f"--retries must be >= 0, got {args.retries}")
    if args.insecure and args.cacert:
        raise UsageError("--insecure and --cacert contradict each other; pick one")
    verify: bool | str = False if args.insecure else (args.cacert or True)
    inputs = _inputs(args)
    client = TritonClient(
        args.url,
        model=args.model,
        transport=args.transport,
        timeout=Timeout(connect=min(args.timeout, 30.0), read=args.timeout),
        headers=_headers(args.header),
        verify=verify,
        max_retries=args.retries,
    )
    with client:
        start = now_ns()
        if not args.stream:
            response = client.generate(args.prompt, **inputs)
            end = now_ns()
            print(response.model_dump_json(exclude_none=True) if args.json else response.text)
            if args.timing:
                print(f"total {(end - start) / 1e6:.1f} ms", file=sys.stderr)
            return 0
        with client.generate_stream(args.prompt, **inputs) as stream:
            try:
                for chunk in stream:
                    if args.json:
                        print(json.dumps(chunk.data, ensure_ascii=False), flush=True)
                    else:
                        sys.stdout.write(chunk.text)
                        sys.stdout.flush()
            except BaseException:
                if stream.events and not args.json:
                    print(flush=True)  # the error goes on a line of its own, after the partial text
                raise
        end = now_ns()
        if not args.json:
            print()
        if args.timing:
            first = f"first token {(stream.first_arrival_ns - start) / 1e6:.1f} ms, " if stream.events else ""
            print(f"{stream.events} events, {first}total {(end - start) / 1e6:.1f} ms", file=sys.stderr)
    return 0
