"""The benchmark's numbers read the same in the console, summary.md and report.html: one
formatter, significant digits, so a small difference never shows as -0.000."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from benchmark.report import difference_text, significant, table_rows
from benchmark.stats import Comparison
from ccub.commands import benchmark as command
from ccub.commands.common import console


def small_difference() -> Comparison:
    return Comparison(metric="clip_score", model="korea-M", baseline="base", n_prompts=40, n_pairs=160,
                      base_mean=31.25, model_mean=31.24956, difference=-0.00044, ci_low=-0.00061,
                      ci_high=-0.00027, confidence=0.95, win_rate=0.45, p_value=0.00031, p_adjusted=0.0012,
                      higher_is_better=True)


@pytest.mark.parametrize(("value", "digits", "signed", "text"), [
    (-0.00044, 2, True, "-0.00044"), (0.123456, 2, True, "+0.12"), (3.14159, 2, False, "3.1"),
    (1234.5, 2, True, "+1234"), (0.0, 2, True, "+0"), (float("nan"), 2, True, "-"), (None, 2, False, "-"),
    (0.000123456, 4, False, "0.0001235"), (12.3456, 4, False, "12.35"),
])
def test_significant_digits(value, digits, signed, text):
    assert significant(value, digits, signed) == text


def test_a_small_difference_reads_the_same_in_html_markdown_and_console():
    c = small_difference()
    assert difference_text(c) == "-0.00044 [-0.00061, -0.00027]"
    row = table_rows([c])[0]  # the rows of summary.md and report.html
    assert row[6] == "-0.00044 [-0.00061, -0.00027]" and "0.000 " not in " ".join(row)
    assert row[8:] == ["0.00031", "0.0012", "paired"]
    outcome = SimpleNamespace(smoke_run=False, comparisons=[c], sets={"kid": {"base": 0.000123456}}, notes=[],
                              counts={"cached": 1}, generated=0, output="runs/x/benchmark")
    with console.capture() as captured:
        command.print_benchmark_summary(outcome)
    printed = captured.get()
    assert "-0.00044" in printed and "[-0.00061, -0.00027]" in printed and "0.0012" in printed
    assert "kid: base 0.0001235" in printed


def test_floating_point_noise_prints_as_zero_and_small_real_values_keep_their_digits():
    from benchmark.report import significant

    assert significant(1.1e-16, signed=True) == "+0" and significant(-3e-17) == "0"
    assert significant(-1.6e-06, signed=True) == "-1.6e-06"
    assert significant(float("inf")) == "inf"
