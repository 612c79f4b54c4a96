"""The proof page (examples/bfcl-smollm2/results.py) reads its numbers from the run's files."""

import json

from fcsft.evaluate.report import paired_difference
from script_module import load


def test_the_page_states_each_target_with_the_figure_that_decides_it(tmp_path, monkeypatch):
    results = load("examples/bfcl-smollm2/results.py")
    monkeypatch.setattr(results, "DOCS", tmp_path / "docs")
    run = tmp_path / "run"
    (run / "compare-bfcl").mkdir(parents=True)
    simple = paired_difference([0] * 100, [1] * 30 + [0] * 70)  # 0% -> 30%
    irrelevance = paired_difference([1] * 100, [1] * 70 + [0] * 30)  # 100% -> 70%
    mmlu = paired_difference([1] * 60 + [0] * 140, [1] * 58 + [0] * 142)
    compare = {
        "layers": {
            "simple_python": {"full_call": simple},
            "irrelevance": {"no_call": irrelevance},
        },
        "mmlu": {"cloze": mmlu, "counts": "cloze"},
    }
    (run / "compare-bfcl" / "compare.json").write_text(json.dumps(compare))
    (run / "compare-bfcl" / "compare.png").write_bytes(b"\x89PNG not really")

    page = results.main(run)

    assert "- simple AST accuracy gain >= 20%: +30.0% (met)" in page
    assert "- irrelevance accuracy >= 80% after tuning: 70.0% (NOT met)" in page
    assert f"McNemar p = {mmlu['p_value']:.3g} (met)" in page
    assert "| simple_python | full_call | 100 | 0.0% [" in page
    assert "![base vs tuned](results-bfcl.png)" in page
    assert (tmp_path / "docs" / "results-bfcl.png").read_bytes() == b"\x89PNG not really"
    assert "fcsft eval compare" in page  # the commands, from run.sh
