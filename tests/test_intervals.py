import pytest

from fcsft.intervals import wilson


def test_wilson_matches_known_values():
    # 81 of 263: the textbook example gives 0.2553-0.3662.
    interval = wilson(81, 263)
    assert interval.low == pytest.approx(0.2553, abs=5e-4)
    assert interval.high == pytest.approx(0.3662, abs=5e-4)


def test_wilson_edges_stay_in_bounds():
    assert wilson(0, 10).low == 0.0 and 0.25 < wilson(0, 10).high < 0.35
    assert wilson(10, 10).high == 1.0 and wilson(0, 0).n == 0
