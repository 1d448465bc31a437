"""The pytest plugin as a user meets it: a failing test's report carries the server log's tail."""

from __future__ import annotations

import pytest

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
