"""Packing is exact: a packed row computes each conversation as if it ran alone."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from fcsft.train.packing import IGNORE, batch_tensors, best_fit, row_of, rows_of

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tiny_llama import tiny_llama  # noqa: E402


@dataclass
class Example:
    input_ids: list[int]
    assistant_masks: list[int]


def tiny_model(attention: str):
    return tiny_llama(vocab=90, seed=2, attention=attention)


def conversations() -> list[Example]:
    out = []
    for k, length in enumerate([9, 14, 5, 22, 7, 11]):
        ids = [3 + (k * 11 + j * 7) % 85 for j in range(length)]
        mask = [int(j >= length // 2) for j in range(length)]
        out.append(Example(ids, mask))
    return out


def token_losses(model, batch) -> list[list[float]]:
    """Per-token cross-entropy of each row's labelled positions (NaN-free, in row order)."""
    with torch.inference_mode():
        logits = model(
            input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
        ).logits
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    labels = batch["labels"]
    out = []
    for row in range(labels.shape[0]):
        losses = []
        for t in range(1, labels.shape[1]):
            if labels[row, t] != IGNORE:
                losses.append(-float(logprobs[row, t - 1, labels[row, t]]))
        out.append(losses)
    return out


def test_best_fit_fills_bins_tightly_and_keeps_every_item():
    bins = best_fit([5, 3, 8, 2, 6, 4], capacity=10)
    assert sorted(i for b in bins for i in b) == list(range(6))
    assert all(sum([5, 3, 8, 2, 6, 4][i] for i in b) <= 10 for b in bins)
    assert len(bins) == 3  # 28 tokens need at least 3 bins of 10
    assert best_fit([12, 3], capacity=10) == [[0], [1]]  # too long: a bin of its own


def test_first_token_of_each_conversation_has_no_label():
    row = row_of(conversations()[:2])
    assert row.position_ids[:9] == list(range(9)) and row.position_ids[9:] == list(range(14))
    assert row.labels[0] == IGNORE and row.labels[9] == IGNORE
    assert row.trained == sum(sum(c.assistant_masks) for c in conversations()[:2])


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_packed_losses_equal_one_at_a_time(attention, dtype):
    model = tiny_model(attention)
    if dtype == "bf16":
        model = model.to(torch.bfloat16)
    examples = conversations()
    packed = rows_of(examples, max_length=32, packing=True)
    assert len(packed) < len(examples)  # several conversations really share rows
    together = token_losses(model, batch_tensors(packed, 0, "cpu"))
    alone = {}
    for index, example in enumerate(examples):
        (losses,) = token_losses(model, batch_tensors([row_of([example])], 0, "cpu"))
        alone[index] = losses
    tolerance = 1e-4 if dtype == "fp32" else 5e-2
    order = [
        i for group in best_fit([len(e.input_ids) for e in examples], 32) for i in sorted(group)
    ]
    flat_alone = [loss for i in order for loss in alone[i]]
    flat_together = [loss for row in together for loss in row]
    assert len(flat_together) == len(flat_alone)
    for got, want in zip(flat_together, flat_alone, strict=True):
        assert got == pytest.approx(want, abs=tolerance, rel=tolerance)


def test_without_position_restarts_the_losses_differ():
    """The check above can fail: attending across a boundary changes the losses."""
    model = tiny_model("sdpa")
    examples = conversations()
    batch = batch_tensors(rows_of(examples, 32, packing=True), 0, "cpu")
    width = batch["input_ids"].shape[1]
    crossing = dict(batch, position_ids=torch.arange(width).repeat(batch["input_ids"].shape[0], 1))
    crossed = [loss for row in token_losses(model, crossing) for loss in row]
    kept = [loss for row in token_losses(model, batch) for loss in row]
    assert crossed != pytest.approx(kept, abs=1e-3)


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_the_step_loss_and_its_gradients_are_the_model_s_own(dtype):
    """batch_loss projects onto the vocabulary only where a label follows: the loss and every
    gradient are what the model's own `labels=` loss gives, on packed rows whose labelled
    positions differ from row to row."""
    from fcsft.models.precision import Choice
    from fcsft.train.run import batch_loss

    batch = batch_tensors(rows_of(conversations(), max_length=32, packing=True), 0, "cpu")
    assert batch["input_ids"].shape[0] > 1
    choice = Choice(precision=dtype, device="cpu", reason="test")
    grads = []
    for ours in (True, False):
        model = tiny_model("sdpa")
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
            loss = (
                batch_loss(model, choice, batch) if ours else model(**batch, use_cache=False).loss
            )
        loss.backward()
        grads.append((float(loss), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (ours, mine), (theirs, reference) = grads
    tolerance = 1e-5 if dtype == "fp32" else 2e-2
    assert ours == pytest.approx(theirs, rel=tolerance)
    for name, grad in reference.items():
        assert torch.allclose(mine[name], grad, atol=tolerance, rtol=tolerance * 10), name
