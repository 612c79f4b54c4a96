import pytest

from fcsft.evaluate.significance import bootstrap_difference, mcnemar


def test_mcnemar_exact_values():
    # 10 gained, 2 lost: two-sided exact p = 2 * P(X <= 2 | n=12, 0.5) = 0.0386.
    first = [0] * 10 + [1] * 2 + [1] * 50
    second = [1] * 10 + [0] * 2 + [1] * 50
    result = mcnemar(first, second)
    assert (result["gained"], result["lost"]) == (10, 2)
    assert result["p_value"] == pytest.approx(0.03857, abs=1e-4)
    assert mcnemar([1, 0], [1, 0])["p_value"] == 1.0


def test_bootstrap_brackets_the_difference():
    first = [0] * 60 + [1] * 40
    second = [1] * 60 + [1] * 40
    result = bootstrap_difference(first, second)
    assert result["difference"] == pytest.approx(0.6)
    assert result["ci95_low"] < 0.6 < result["ci95_high"]
