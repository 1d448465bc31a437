"""The pytest plugin as a user meets it: a failing test's report carries the server log's tail."""

from __future__ import annotations

from pathlib import Path

import pytest

from trtclient.server.launcher import ServerHandle

USER_REPOSITORY = Path(__file__).resolve().parents[1] / "fakes" / "user_repository"

pytestmark = pytest.mark.integration


def test_failing_test_report_carries_only_the_server_lines_of_that_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import httpx

        def test_uses_the_server(triton_server):
            assert httpx.get(triton_server.url + "/v2/health/ready").status_code == 200
            assert False, "deliberate failure"

        def test_fails_without_the_server():
            assert False, "nothing to do with Triton"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    output = result.stdout.str()
    assert output.count("triton server log during this test") == 1  # only the test that used it
    # The start-up lines were written before the test began: they are not this test's.
    assert "Started HTTPService" not in output
    assert "(the server logged nothing during this test)" in output


def test_triton_url_points_the_fixture_at_a_running_server(
    pytester: pytest.Pytester, triton_server: ServerHandle
) -> None:
    pytester.makepyfile(
        f"""
        def test_url(triton_server):
            assert triton_server.url == "{triton_server.url}"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--triton-url", triton_server.url)
    result.assert_outcomes(passed=1)


def test_a_dead_triton_url_fails_once_at_set_up(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_one(triton_server):
            pass

        def test_two(triton_server):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--triton-url", "http://127.0.0.1:9")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    output = result.stdout.str() + result.stderr.str()
    assert output.count("--triton-url http://127.0.0.1:9: no Triton answers there") == 1
    assert "Traceback" not in output


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


def test_the_readme_async_example_runs_as_written(
    pytester: pytest.Pytester, triton_server: ServerHandle
) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = readme.index("An async test (with pytest-asyncio):")
    example = readme[start:].split("```python\n", 1)[1].split("```", 1)[0]
    pytester.makepyfile(example)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--triton-url", triton_server.url)
    result.assert_outcomes(passed=1)
