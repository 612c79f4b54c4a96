"""Packing conversations into fixed-length rows, and rows into tensors, exactly.

Several conversations share a row so that a batch is not mostly padding. Each keeps its own
position ids (0, 1, 2, ... from its first token), and the model is given the position ids
instead of an attention mask (and `use_cache=False`): transformers reads a restart of the
positions as the start of a new sequence and lets no token attend across it, so a packed
conversation is computed as if it were alone, with any attention implementation. Labels are the conversation's own assistant tokens; the first token of each
conversation gets none, since the token before it belongs to another one.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

from fcsft.errors import require

IGNORE = -100  # a label the loss skips


@dataclass
class Row:
    """One training sequence: token ids, position ids and labels of equal length."""

    input_ids: list[int]
    position_ids: list[int]
    labels: list[int]

    @property
    def trained(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE)


def best_fit(lengths: list[int], capacity: int) -> list[list[int]]:
    """Indices grouped into bins of at most `capacity` tokens, longest first, each into the bin
    it fills most tightly (best-fit decreasing); an item longer than `capacity` gets a bin of
    its own."""
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (room left, bin number), sorted
    for index in sorted(range(len(lengths)), key=lambda k: (-lengths[k], k)):
        size = lengths[index]
        at = bisect.bisect_left(free, (size, -1))
        if at < len(free):
            room, number = free.pop(at)
            bins[number].append(index)
            bisect.insort(free, (room - size, number))
        else:
            bins.append([index])
            if capacity - size > 0:
                bisect.insort(free, (capacity - size, len(bins) - 1))
    return bins


def row_of(examples: list[Any]) -> Row:
    """Examples (`input_ids`, `assistant_masks`) laid end to end in one row."""
    ids: list[int] = []
    positions: list[int] = []
    labels: list[int] = []
    for example in examples:
        ids.extend(example.input_ids)
        positions.extend(range(len(example.input_ids)))
        own = [
            t if m else IGNORE
            for t, m in zip(example.input_ids, example.assistant_masks, strict=True)
        ]
        own[0] = IGNORE
        labels.extend(own)
    return Row(ids, positions, labels)


def rows_of(examples: list[Any], max_length: int, packing: bool) -> list[Row]:
    """Training rows: packed best-fit into `max_length`, or one conversation a row."""
    if not packing:
        return [row_of([e]) for e in examples]
    bins = best_fit([len(e.input_ids) for e in examples], max_length)
    return [row_of([examples[i] for i in sorted(group)]) for group in bins]


def batch_tensors(rows: list[Row], pad_id: int, device: Any) -> dict[str, Any]:
    """Rows right-padded to the longest as tensors; padding gets positions of its own (a
    sequence apart, as far as attention goes) and no labels."""
    torch = require("torch", "train")
    width = max(len(r.input_ids) for r in rows)
    ids, positions, labels = [], [], []
    for row in rows:
        pad = width - len(row.input_ids)
        ids.append(row.input_ids + [pad_id] * pad)
        positions.append(row.position_ids + list(range(pad)))
        labels.append(row.labels + [IGNORE] * pad)
    return {
        "input_ids": torch.tensor(ids, device=device),
        "position_ids": torch.tensor(positions, device=device),
        "labels": torch.tensor(labels, device=device),
    }
