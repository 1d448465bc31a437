"""The exit codes shared by bench, sweep, capacity and Locust: one table, one decision, budgets parsed."""

from __future__ import annotations

import pytest

from trtclient import exit_codes as ec
from trtclient.cli import main
from trtclient.loadtest.failures import failure_reasons
from trtclient.loadtest.records import RequestRecord


def test_the_table_names_every_code_once() -> None:
    codes = [code for code, _, _ in ec.EXIT_CODES]
    assert codes == [ec.OK, ec.ERROR, ec.USAGE, ec.FAILURES, ec.SLO_MISSED, ec.INTERRUPTED]
    assert len(set(codes)) == len(codes)


@pytest.mark.parametrize(
    ("text", "failed", "sent", "exceeded"),
    [("0", 1, 100, True), ("0", 0, 100, False), ("5", 5, 100, False), ("5", 6, 100, True),
     ("2%", 2, 100, False), ("2%", 3, 100, True), ("100%", 100, 100, False)],
)  # fmt: skip
def test_failure_budgets(text: str, failed: int, sent: int, exceeded: bool) -> None:
    assert ec.parse_max_failures(text).exceeded(failed, sent) is exceeded


@pytest.mark.parametrize("text", ["-1", "x", "150%", "1.5"])
def test_bad_budgets_say_what_to_write(text: str) -> None:
    with pytest.raises(ValueError, match="--max-failures expects a number of requests"):
        ec.parse_max_failures(text)


def test_the_decision_order_interrupted_failures_slo_nothing_measured() -> None:
    budget = ec.FailureBudget(count=1)
    assert ec.exit_code(interrupted=True, sent=9, failed=9, measured_ok=0) == ec.INTERRUPTED
    assert ec.exit_code(interrupted=False, sent=9, failed=2, measured_ok=7, budget=budget) == ec.FAILURES
    assert (
        ec.exit_code(interrupted=False, sent=9, failed=1, measured_ok=8, budget=budget, slo_missed=True)
        == ec.SLO_MISSED
    )
    assert ec.exit_code(interrupted=False, sent=9, failed=1, measured_ok=8, budget=budget) == ec.OK
    everything = ec.FailureBudget(fraction=1.0)
    assert ec.exit_code(interrupted=False, sent=3, failed=3, measured_ok=0, budget=everything) == ec.ERROR


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bench", "--url", "http://127.0.0.1:9", "--max-failures", "lots"], "--max-failures expects"),
        (["bench", "--url", "http://127.0.0.1:9", "--fail-on-slo"], "--fail-on-slo needs at least one --slo"),
        (["sweep", "--rate", "1", "--requests", "2", "--url", "http://127.0.0.1:9", "--max-failures", "-2"],
         "--max-failures expects"),
    ],
)  # fmt: skip
def test_bad_gates_are_usage_errors_before_any_load(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == ec.USAGE
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_failure_reasons_count_per_kind_and_keep_the_most_common_messages() -> None:
    def failed(i: int, kind: str, message: str) -> RequestRecord:
        return RequestRecord(i, 0, status="failed", error_kind=kind, error_message=message)

    records = [failed(i, "http_400", "prompt length (10000) exceeds max_input_len (1024)") for i in range(3)]
    records += [failed(3, "http_400", "bad\n  input"), failed(4, "timeout_read", "x" * 300)]
    records += [RequestRecord(5, 0, status="ok")]
    reasons = failure_reasons(records)
    assert [(r.kind, r.count) for r in reasons] == [("http_400", 4), ("timeout_read", 1)]
    too_long = "prompt length (10000) exceeds max_input_len (1024)"
    assert reasons[0].messages == ((too_long, 3), ("bad input", 1))
    ((long_text, _),) = reasons[1].messages
    assert len(long_text) == 200 and long_text.endswith("...")
