"""TensorRT-LLM release numbers and the flag spellings each release understands."""

from __future__ import annotations

from importlib import metadata

import pytest

from trtclient.server.deploy import versions
from trtclient.server.deploy.versions import TrtllmVersion, installed_version, spelling_for


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.12.0", (0, 12, 0)),
        ("0.9.0.dev2024032600", (0, 9, 0)),
        ("1.2.0rc2", (1, 2, 0)),
        ("v0.19", (0, 19, 0)),
        (" 0.11.0 ", (0, 11, 0)),
    ],
)
def test_parse_keeps_numbers_and_text(text: str, expected: tuple[int, int, int]) -> None:
    version = TrtllmVersion.parse(text)
    assert (version.major, version.minor, version.patch) == expected
    assert str(version) == text.strip()


@pytest.mark.parametrize("text", ["", "twelve", "0", "latest"])
def test_parse_rejects_non_versions(text: str) -> None:
    with pytest.raises(ValueError, match="not a TensorRT-LLM version"):
        TrtllmVersion.parse(text)


def test_versions_order_numerically_not_textually() -> None:
    assert TrtllmVersion.parse("0.9.0") < TrtllmVersion.parse("0.10.0") < TrtllmVersion.parse("1.0.0")
    assert TrtllmVersion.parse("0.12.0rc1") == TrtllmVersion.parse("0.12.0")
    assert TrtllmVersion.parse("0.11.0").at_least("0.11")
    assert not TrtllmVersion.parse("0.10.0").at_least("0.11")


def test_installed_version_reads_package_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []

    def fake_version(name: str) -> str:
        seen.append(name)
        return "0.12.0.dev2024073000"

    monkeypatch.setattr(versions.metadata, "version", fake_version)  # type: ignore[attr-defined]
    assert installed_version() == TrtllmVersion.parse("0.12.0")
    assert seen == ["tensorrt_llm"]


def test_installed_version_is_none_without_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(versions.metadata, "version", missing)  # type: ignore[attr-defined]
    assert installed_version() is None


# Expectations from the release notes: max_output_len until 0.10 (max_seq_len from 0.11, RN 0.11/0.12);
# --kv_cache_type from 0.14 (--paged_kv_cache before); example folders under models/core from 0.20.
@pytest.mark.parametrize(
    ("release", "sequence_flag", "paged_flag", "paged_on", "subdir"),
    [
        ("0.9.0", "--max_output_len", "--paged_kv_cache", "enable", ""),
        ("0.10.0", "--max_output_len", "--paged_kv_cache", "enable", ""),
        ("0.11.0", "--max_seq_len", "--paged_kv_cache", "enable", ""),
        ("0.12.0", "--max_seq_len", "--paged_kv_cache", "enable", ""),
        ("0.14.0", "--max_seq_len", "--kv_cache_type", "paged", ""),
        ("0.19.0", "--max_seq_len", "--kv_cache_type", "paged", ""),
        ("0.20.0", "--max_seq_len", "--kv_cache_type", "paged", "models/core"),
        ("1.0.0", "--max_seq_len", "--kv_cache_type", "paged", "models/core"),
    ],
)
def test_spelling_per_release(
    release: str, sequence_flag: str, paged_flag: str, paged_on: str, subdir: str
) -> None:
    spelling = spelling_for(TrtllmVersion.parse(release))
    assert spelling.sequence_flag == sequence_flag
    assert spelling.paged_kv_flag == paged_flag
    assert spelling.paged_kv_value(True) == paged_on
    assert spelling.paged_kv_value(False) == ("continuous" if paged_flag == "--kv_cache_type" else "disable")
    assert spelling.examples_subdir == subdir


def test_auto_dtype_and_int8_gptq_arrive_in_0_15() -> None:
    before, after = spelling_for(TrtllmVersion.parse("0.14.0")), spelling_for(TrtllmVersion.parse("0.15.0"))
    assert "auto" not in before.convert_dtypes and "auto" in after.convert_dtypes
    assert "int8_gptq" not in before.weight_only_precisions and "int8_gptq" in after.weight_only_precisions
    assert {"int4", "int8", "int4_gptq", "int4_awq"} <= before.weight_only_precisions
