"""The pytest plugin as a user meets it: a failing test's report carries the server log's tail."""

from __future__ import annotations

from pathlib import Path

import pytest

USER_REPOSITORY = Path(__file__).resolve().parents[1] / "fakes" / "user_repository"

pytestmark = pytest.mark.integration


def test_failing_test_report_includes_the_server_log(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import httpx

        def test_uses_the_server(triton_server):
            assert httpx.get(triton_server.url + "/v2/health/ready").status_code == 200
            assert False, "deliberate failure"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*triton server log (last 40 lines)*", "*Started HTTPService at 127.0.0.1:*"]
    )


def test_triton_url_points_the_fixture_at_a_running_server(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_url(triton_server):
            assert triton_server.url == "http://127.0.0.1:9"
            assert triton_server.grpc_url == "127.0.0.1:10"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--triton-url", "http://127.0.0.1:9")
    result.assert_outcomes(passed=1)


def test_triton_template_dir_serves_the_users_repository(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import httpx

        def test_their_models(triton_server):
            config = httpx.get(triton_server.url + "/v2/models/ensemble/config").json()
            assert "min_length" in [tensor["name"] for tensor in config["input"]]  # theirs, not ours
            response = httpx.post(
                triton_server.url + "/v2/models/ensemble/generate",
                json={"text_input": "What is machine learning?", "max_tokens": 4},
            )
            assert response.status_code == 200
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--triton-template-dir", str(USER_REPOSITORY)
    )
    result.assert_outcomes(passed=1)
