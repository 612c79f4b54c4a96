"""The README's quickstart paragraph (examples/finance/summary.py): its figures are the
committed run's, and they say what the comparison says."""

import json

from fcsft.evaluate.report import paired_difference
from script_module import load

summary = load("examples/finance/summary.py")


def test_the_paragraph_gives_each_layers_rates_interval_p_and_verdict():
    standard = paired_difference([0] * 20, [1] * 12 + [0] * 8)
    adversarial = paired_difference([1] * 10, [1] * 9 + [0])
    success = paired_difference([0] * 8, [1] * 3 + [0] * 5)
    compare = {
        "layers": {
            "standard": {"full_call": standard, "tool_selection": standard},
            "adversarial": {"no_call": adversarial, "tool_selection": adversarial},
        },
        "live": {"metrics": {"success": success}},
    }
    text = summary.paragraph(compare, {"generate": 120.0, "train": 480.0, "evaluate": 300.0})
    # 12 discordant pairs all one way: exact McNemar p = 2 * 0.5**12 = 0.00049
    assert "standard (full-call) 0% -> 60% (n = 20, +60.0% [" in text
    assert "McNemar p = 0.00049, significant)" in text
    # one pair lost of ten: p = 1
    assert "should not call (no-call) 100% -> 90% (n = 10, -10.0% [" in text
    assert "McNemar p = 1, not significant)" in text
    assert "live task success 0% -> 38% (n = 8, +37.5% [no interval at n=8]" in text
    assert "took 15 min" in text and "(generate 2.0, train 8.0, evaluate 5.0 min)" in text


def test_the_readme_paragraph_is_the_one_written_from_the_committed_run():
    readme = summary.README.read_text()
    if (summary.RESULTS / "compare.json").exists():
        compare = json.loads((summary.RESULTS / "compare.json").read_text())
        wall = json.loads((summary.RESULTS / "wall_s.json").read_text())
        expected = summary.paragraph(compare, wall)
    else:
        expected = summary.NOT_RUN
    assert summary.with_block(readme, summary.BEGIN, summary.END, expected) == readme
