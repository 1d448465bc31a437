"""Explaining models that failed to load, from lines shaped as tritonserver 2.51 writes them."""

from __future__ import annotations

from pathlib import Path

from trtclient.server.load_errors import explain_load_failure

RUN = "/cache/runs/run-1/models"
IMPORT_FAILURE = (
    "E1204 model_lifecycle.cc:642] \"failed to load 'preprocessing' version 1: Internal: "
    "ModuleNotFoundError: No module named 'transformers'\\n\\nAt:\\n  "
    f"{RUN}/preprocessing/1/model.py(38): <module>\\n  <frozen importlib._bootstrap>(241): "
    '_call_with_frames_removed\\n"\n'
)
OTHER_FAILURE = (
    "E1204 model_lifecycle.cc:642] \"failed to load 'tensorrt_llm_bls' version 1: Internal: "
    "ValueError: mutable default for field text_input is not allowed\\n\\nAt:\\n  "
    "/usr/lib/python3.11/dataclasses.py(815): _get_field\\n  "
    f"{RUN}/tensorrt_llm_bls/1/lib/decode.py(58): <module>\\n  "
    f'{RUN}/tensorrt_llm_bls/1/model.py(31): <module>\\n"\n'
)


def test_a_missing_package_names_model_file_line_and_what_to_do(tmp_path: Path) -> None:
    message = explain_load_failure(IMPORT_FAILURE, tmp_path, None)
    assert message == (
        f"model 'preprocessing' failed to import the package 'transformers' "
        f"({tmp_path}/preprocessing/1/model.py, line 38). The model environment lacks them: "
        "list transformers in a --requirements file (pip requirements syntax)"
    )


def test_other_failures_name_the_innermost_file_of_the_model_and_the_exception(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    message = explain_load_failure(OTHER_FAILURE + IMPORT_FAILURE, tmp_path, requirements)
    assert message is not None
    bls, preprocessing = message.split("; ")
    assert bls == (
        f"model 'tensorrt_llm_bls' failed to load ({tmp_path}/tensorrt_llm_bls/1/lib/decode.py, line 58): "
        "ValueError: mutable default for field text_input is not allowed"
    )
    assert preprocessing.endswith(f"add transformers to {requirements} (pip requirements syntax)")


def test_a_log_without_load_failures_explains_nothing(tmp_path: Path) -> None:
    assert (
        explain_load_failure('I1204 server.cc:305] "Waiting for in-flight requests"\n', tmp_path, None)
        is None
    )
