"""The public surface: a sorted __all__ of importable names, loaded only when used."""

from __future__ import annotations

import subprocess
import sys

import trtclient


def test_all_is_sorted_and_unique() -> None:
    assert trtclient.__all__ == sorted(set(trtclient.__all__))


def test_every_exported_name_resolves_to_its_defining_module() -> None:
    for name in trtclient.__all__:
        value = getattr(trtclient, name)
        if name != "__version__":
            assert value.__module__.startswith("trtclient."), name
    assert {"AsyncTritonClient", "TritonClient", "GenerateRequest", "GenerateResponse", "StreamChunk"} <= set(
        trtclient.__all__
    )


def test_every_public_error_class_is_exported() -> None:
    from trtclient import errors

    assert {n for n in errors.__all__ if isinstance(getattr(errors, n), type)} <= set(trtclient.__all__)


def test_unknown_names_raise_attribute_error() -> None:
    try:
        trtclient.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_importing_the_package_does_not_load_the_http_stack() -> None:
    code = (
        "import sys, trtclient, trtclient.timing; "
        "print(sorted(m for m in ('aiohttp', 'httpx', 'grpc', 'pydantic') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
    lazy = (
        "import sys, trtclient; trtclient.AsyncTritonClient; "
        "print('aiohttp' in sys.modules, 'grpc' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", lazy], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "True False"
