"""Batched decoding (shared prefix, finished rows dropped) against each row generated alone."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from fcsft.models.decode import MIN_SHARED_PREFIX, decode, shared_prefix  # noqa: E402
from fcsft.models.local import StopTracker  # noqa: E402
from tiny_llama import tiny_llama  # noqa: E402

EOS = 1


def tiny_model():
    return tiny_llama(vocab=96, seed=0, eos_token_id=EOS, pad_token_id=0)


def alone(model, row: list[int], limit: int) -> list[int]:
    """Greedy continuation of one row, one token at a time with no cache and no padding."""
    ids = list(row)
    made: list[int] = []
    with torch.inference_mode():
        while len(made) < limit:
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
            token = int(logits.argmax())
            made.append(token)
            ids.append(token)
            if token == EOS:
                break
    return made


def tracker(limits):
    return StopTracker(limits, [[] for _ in limits], {EOS}, lambda ids: "")


def test_shared_prefix_leaves_every_row_a_token_of_its_own():
    assert shared_prefix([[5, 6, 7], [5, 6, 7, 8]]) == 2
    assert shared_prefix([[5, 6], [9, 6]]) == 0
    assert shared_prefix([[5, 6, 7]]) == 0


@pytest.mark.parametrize("prefix_len", [0, MIN_SHARED_PREFIX + 4])
def test_batched_rows_equal_rows_alone(prefix_len):
    model = tiny_model()
    prefix = [(7 * k) % 90 + 3 for k in range(prefix_len)]
    rows = [prefix + [(k * 13 + j) % 90 + 3 for j in range(2 + 3 * k)] for k in range(5)]
    limits = [3, 12, 7, 20, 1]
    got = decode(model, rows, tracker(limits), pad_id=0)
    want = [alone(model, row, limit) for row, limit in zip(rows, limits, strict=True)]
    assert got == want
    assert [len(g) for g in got] != [max(limits)] * len(rows)  # rows ended at their own limits


def test_a_row_that_ends_early_does_not_change_the_others():
    model = tiny_model()
    rows = [[3, 4, 5, 6], [9, 8, 7], [10, 11, 12, 13, 14]]
    together = decode(model, rows, tracker([2, 15, 15]), pad_id=0)
    later = decode(model, rows[1:], tracker([15, 15]), pad_id=0)
    assert together[1:] == later
    assert len(together[0]) <= 2


def test_bf16_rows_mostly_agree_with_fp32():
    model = tiny_model()
    rows = [[(k * 5 + j) % 90 + 3 for j in range(6)] for k in range(8)]
    fp32 = decode(model, rows, tracker([6] * 8), pad_id=0)
    bf16 = decode(model.to(torch.bfloat16), rows, tracker([6] * 8), pad_id=0)
    first_tokens = sum(a[0] == b[0] for a, b in zip(fp32, bf16, strict=True))
    assert first_tokens >= 6


def test_sampling_is_reproducible_with_a_seed():
    model = tiny_model()
    rows = [[3, 4, 5], [6, 7, 8]]
    one = decode(model, rows, tracker([10, 10]), pad_id=0, temperature=1.0, seed=3)
    two = decode(model, rows, tracker([10, 10]), pad_id=0, temperature=1.0, seed=3)
    assert one == two


def test_a_batch_takes_the_oldest_job_and_those_nearest_it_in_size():
    import asyncio

    from fcsft.models.local import GenerationJob, _Pending, similar_sized

    loop = asyncio.new_event_loop()
    sizes = [50, 10, 900, 55, 48, 1000, 60, 12]
    pending = [
        _Pending(
            GenerationJob([{"role": "user", "content": "x" * n}], 8), loop.create_future(), loop
        )
        for n in sizes
    ]
    batch = similar_sized(pending, 4)
    assert batch[0] is pending[0]  # the oldest always goes
    assert sorted(p.job.size for p in batch) == [48, 50, 55, 60]
    assert [pending.index(p) for p in batch] == sorted(pending.index(p) for p in batch)
    assert similar_sized(pending[:3], 4) == pending[:3]
    loop.close()


def first_logits(model, row):
    with torch.inference_mode():
        return model(input_ids=torch.tensor([row])).logits[0, -1]


def test_a_nudge_moves_one_tokens_logit_by_each_rows_bias_and_nothing_else():
    """The bias shifts exactly one choice: a row whose bias just exceeds the token's gap to the
    best picks it, one just short does not, and a row with no bias is unchanged."""
    from fcsft.models.decode import Nudge

    model = tiny_model()
    rows = [[(k * 11 + j) % 90 + 3 for j in range(5)] for k in range(6)]
    plain = decode(model, rows, tracker([6] * 6), pad_id=0)
    token = next(t for t in range(2, 96) if all(p[0] != t for p in plain))
    gaps = []
    for row in rows:
        logits = first_logits(model, row)
        gaps.append(float(logits.max() - logits[token]))
    bias = [
        gap + 0.01 if k % 3 == 0 else gap - 0.01 if k % 3 == 1 else 0.0
        for k, gap in enumerate(gaps)
    ]
    nudged = decode(model, rows, tracker([6] * 6), pad_id=0, nudge=Nudge((), token, bias))
    for k in range(6):
        if k % 3 == 0:
            assert nudged[k][0] == token
        else:
            assert nudged[k] == plain[k]


def test_a_nudge_applies_only_where_the_reply_so_far_is_its_prefix():
    from fcsft.models.decode import Nudge

    model = tiny_model()
    rows = [[3, 4, 5, 6], [9, 8, 7], [10, 11, 12, 13, 14]]
    plain = decode(model, rows, tracker([5, 5, 5]), pad_id=0)
    first = plain[0][0]
    token = next(t for t in range(2, 96) if t not in (plain[0][1], EOS))
    nudge = Nudge((first,), token, [1e4] * 3)
    nudged = decode(model, rows, tracker([5, 5, 5]), pad_id=0, nudge=nudge)
    assert nudged[0][:2] == [first, token]
    assert any(plain[k][0] != first for k in (1, 2))
    for k in (1, 2):
        if plain[k][0] != first:
            assert nudged[k] == plain[k]


def test_the_unbiased_margin_of_the_choice_is_recorded_for_rows_that_reach_it():
    """margins[row]: the token's logit minus the best other one, before any bias, where the
    row's reply so far is the nudge's prefix; None for a row that never got there. A bias
    that keeps the margin's sign leaves the row's reply as it was."""
    from fcsft.models.decode import Nudge

    model = tiny_model()
    rows = [[(k * 7 + j) % 90 + 3 for j in range(6)] for k in range(5)]
    plain = decode(model, rows, tracker([4] * 5), pad_id=0)
    token = plain[0][0]  # row 0 picks it unbiased (a positive margin), others may not
    nudge = Nudge((), token, [0.0] * 5)
    assert decode(model, rows, tracker([4] * 5), pad_id=0, nudge=nudge) == plain
    for row, margin in zip(rows, nudge.margins, strict=True):
        logits = first_logits(model, row)
        others = torch.cat([logits[:token], logits[token + 1 :]])
        assert margin == pytest.approx(float(logits[token] - others.max()), abs=1e-4)
    assert nudge.margins[0] > 0
    smaller = Nudge((), token, [-nudge.margins[0] / 2] + [0.0] * 4)
    assert decode(model, rows, tracker([4] * 5), pad_id=0, nudge=smaller)[0] == plain[0]

    unreached = Nudge((EOS, EOS), token, [0.0] * 5)
    decode(model, rows, tracker([4] * 5), pad_id=0, nudge=unreached)
    assert all(
        m is None for m, made in zip(unreached.margins, plain, strict=True) if made[:2] != [EOS] * 2
    )
