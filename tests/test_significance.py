"""McNemar's exact test and Newcombe's paired interval, against published figures."""

import pytest

from fcsft.evaluate.significance import MIN_PAIRS, mcnemar, paired_interval


def test_mcnemar_exact_values():
    # 10 gained, 2 lost: two-sided exact p = 2 * P(X <= 2 | n=12, 0.5) = 0.0386.
    first = [0] * 10 + [1] * 2 + [1] * 50
    second = [1] * 10 + [0] * 2 + [1] * 50
    result = mcnemar(first, second)
    assert (result["gained"], result["lost"]) == (10, 2)
    assert result["p_value"] == pytest.approx(0.03857, abs=1e-4)
    assert mcnemar([1, 0], [1, 0])["p_value"] == 1.0


def table(both, second_only, first_only, neither):
    """Paired outcomes from the four cells of a 2x2 table."""
    first = [1] * both + [0] * second_only + [1] * first_only + [0] * neither
    second = [1] * both + [1] * second_only + [0] * first_only + [0] * neither
    return first, second


def test_newcombe_interval_matches_the_published_worked_example():
    # Fagerland, Lydersen & Laake, Statistical Analysis of Contingency Tables (2017), ch. 8:
    # complete response before and after consolidation therapy (Cavo et al. 2012), the table
    # [[59, 6], [16, 80]]; the Newcombe square-and-add interval for the difference of the
    # row and column margins is -0.0621 (95% CI -0.1186 to -0.0046).
    first, second = table(both=59, second_only=6, first_only=16, neither=80)
    result = paired_interval(first, second)
    assert result["difference"] == pytest.approx(-10 / 161)
    assert result["ci95_low"] == pytest.approx(-0.1186, abs=5e-5)
    assert result["ci95_high"] == pytest.approx(-0.0046, abs=5e-5)
    # Swapping the two models mirrors the interval.
    mirrored = paired_interval(second, first)
    assert mirrored["ci95_low"] == pytest.approx(0.0046, abs=5e-5)
    assert mirrored["ci95_high"] == pytest.approx(0.1186, abs=5e-5)


def test_no_difference_at_the_edges_still_gets_an_honest_interval():
    # 0/100 for both: the difference is 0 and the interval is each rate's Wilson half-width,
    # 1.96^2 / (100 + 1.96^2) = 0.0370 either way (phi is 0: a margin is empty).
    result = paired_interval([0] * 100, [0] * 100)
    assert result["difference"] == 0.0
    assert result["ci95_low"] == pytest.approx(-0.0370, abs=5e-5)
    assert result["ci95_high"] == pytest.approx(0.0370, abs=5e-5)


def test_an_interval_never_leaves_minus_one_to_one_and_brackets_the_difference():
    for gained in range(0, 31, 3):
        for lost in range(0, 31 - gained, 4):
            first, second = table(5, gained, lost, 30 - gained - lost)
            result = paired_interval(first, second)
            assert -1 <= result["ci95_low"] <= result["difference"] <= result["ci95_high"] <= 1


def test_small_n_gets_no_interval_instead_of_a_misleading_one():
    # The case: 4 of 6 gained, which a percentile bootstrap put at [+33%, +100%]
    # beside McNemar's p = 0.125.
    first, second = [0] * 6, [1] * 4 + [0] * 2
    result = paired_interval(first, second)
    assert result["difference"] == pytest.approx(4 / 6)
    assert result["ci95_low"] is None and result["ci95_high"] is None
    assert mcnemar(first, second)["p_value"] == pytest.approx(0.125)
    assert MIN_PAIRS == 10
    assert paired_interval([0] * 10, [1] * 4 + [0] * 6)["ci95_low"] is not None
