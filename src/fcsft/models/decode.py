"""Batched decoding of a causal LM on token ids: shared prefix once, finished rows dropped.

Three things make a batch cheaper than `generate` over the same rows, none of which changes
what a row produces:

- The longest token prefix every row shares (the system prompt and tool list that an
  evaluation offers to many items) is run once, as a batch of one, and its key/value cache is
  copied to every row.
- The rows' own parts sit after the prefix, left-padded to one width; padding is masked out
  and position ids skip it, so each row sees exactly its own tokens at its own positions.
- A row that has finished (end of turn, a stop string, its token limit) leaves the batch and
  its cache; the batch shrinks instead of padding done rows until the longest one ends.

Only the last position's logits are computed while reading a prompt. The same function
serves greedy and sampled decoding; `tracker` (a `StopTracker`) decides when rows end.
A `Nudge` shifts one token's logit at one point of each row's reply: the call bias, which moves
the threshold of the choice between opening a tool call and answering. The unbiased margin of
that choice is recorded per row: under greedy decoding a reply whose margin keeps its sign
under another bias would be the same reply, so it need not be generated again. A `CallGuard`
replaces a token that would make a tool call unparseable or unfit for the offered functions
(`fcsft.models.guard`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

from fcsft.errors import require
from fcsft.models.guard import TOP, CallGuard

MIN_SHARED_PREFIX = 16  # tokens; below this a separate pass for the prefix is not worth it


class RowTracker(Protocol):
    limits: list[int]
    lengths: list[int | None]
    window: int  # newest tokens a stop string can span

    def step(self, tails: list[list[int]], generated: int) -> list[bool]: ...


@dataclass(frozen=True)
class Nudge:
    """`bias[row]` is added to the logit of `token` when the row's reply so far is exactly
    `after` (the tokens the call and answer openers share, `<` before `tool_call` or
    `final_answer`): a log-odds offset on that one choice, nothing else.

    `margins[row]`, filled in by `decode`, is the unbiased logit of `token` minus the highest
    other logit at that point (positive: the call opener wins without a bias), or None for a
    row whose reply never reached it."""

    after: tuple[int, ...]
    token: int
    bias: list[float]
    margins: list[float | None] = field(default_factory=list)


def shared_prefix(rows: list[list[int]]) -> int:
    """Tokens every row starts with, leaving each row at least one token of its own."""
    if len(rows) < 2:
        return 0
    shortest = min(len(r) for r in rows)
    first = rows[0]
    n = 0
    while n < shortest - 1 and all(r[n] == first[n] for r in rows[1:]):
        n += 1
    return n


def decode(
    model: Any,
    rows: list[list[int]],
    tracker: RowTracker,
    *,
    pad_id: int,
    temperature: float = 0.0,
    seed: int | None = None,
    nudge: Nudge | None = None,
    guard: CallGuard | None = None,
) -> list[list[int]]:
    """The new tokens of each row, each cut where `tracker` ended it; with a `guard`, tool
    calls are kept valid for the offered functions (`fcsft.models.guard`)."""
    torch = require("torch", "local")
    transformers = require("transformers", "local")
    device = model.device
    generator = None
    if temperature > 0:
        generator = torch.Generator(device=device)
        generator.manual_seed(seed if seed is not None else torch.seed())
    width_prefix = shared_prefix(rows)
    if width_prefix < MIN_SHARED_PREFIX:
        width_prefix = 0
    cache = transformers.DynamicCache()
    cache_arg = cache_keyword(model)
    with torch.inference_mode():
        if width_prefix:
            prefix = torch.tensor([rows[0][:width_prefix]], device=device)
            model(input_ids=prefix, **{cache_arg: cache}, use_cache=True, logits_to_keep=1)
            cache.batch_repeat_interleave(len(rows))
        ids, own_mask, _ = left_padded([r[width_prefix:] for r in rows], pad_id, device)
        mask = torch.cat([own_mask.new_ones((len(rows), width_prefix)), own_mask], dim=1)
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        logits = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions[:, width_prefix:],
            **{cache_arg: cache},
            use_cache=True,
            logits_to_keep=1,
        ).logits[:, -1, :]
        last_position = positions[:, -1]
        made: list[list[int]] = [[] for _ in rows]
        active = list(range(len(rows)))  # original row of each batch row
        generated = 0
        if nudge is not None:
            nudge.margins[:] = [None] * len(rows)
        while active:
            if nudge is not None and generated == len(nudge.after):
                _record_margins(logits, nudge, made, active)
                logits = _nudged(torch, logits, nudge, made, active)
            chosen = _pick(torch, logits, temperature, generator)
            if guard is not None:
                chosen = _guarded(torch, logits, chosen, guard, active, temperature, generator)
            generated += 1
            for batch_row, token in zip(active, chosen.tolist(), strict=True):
                made[batch_row].append(token)
                if guard is not None:
                    guard.advance(batch_row, token)
            tails = [[] for _ in rows]
            for row in active:
                tails[row] = made[row][-tracker.window :]
            done = tracker.step(tails, generated)
            keep = [k for k, row in enumerate(active) if not done[row]]
            if not keep:
                break
            if len(keep) < len(active):
                index = torch.tensor(keep, device=device)
                cache.batch_select_indices(index)
                mask, chosen, last_position = mask[index], chosen[index], last_position[index]
                active = [active[k] for k in keep]
            last_position = last_position + 1
            mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
            logits = model(
                input_ids=chosen[:, None],
                attention_mask=mask,
                position_ids=last_position[:, None],
                **{cache_arg: cache},
                use_cache=True,
            ).logits[:, -1, :]
    return [made[row][: tracker.lengths[row] or len(made[row])] for row in range(len(rows))]


def left_padded(rows: list[list[int]], pad_id: int, device: Any) -> tuple[Any, Any, Any]:
    """Ids, attention mask and position ids of rows padded on the left to one width; the
    position ids skip the padding, so each row's tokens sit where they would alone."""
    torch = require("torch", "local")
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        ids[index, width - len(row) :] = torch.tensor(row, dtype=torch.long)
        mask[index, width - len(row) :] = 1
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    return ids.to(device), mask.to(device), positions.to(device)


def cache_keyword(model: Any) -> str:
    """The forward argument that takes a key/value cache: `cache` in current transformers,
    `past_key_values` before it was renamed."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _record_margins(logits: Any, nudge: Nudge, made: list[list[int]], active: list[int]) -> None:
    """Each active row at the choice gets its margin in `nudge.margins` (see `Nudge`)."""
    after = list(nudge.after)
    at = [k for k, row in enumerate(active) if made[row] == after]
    if not at:
        return
    choice = logits[at].float()
    call = choice[:, nudge.token].clone()
    choice[:, nudge.token] = -math.inf
    for k, margin in zip(at, (call - choice.max(dim=-1).values).tolist(), strict=True):
        nudge.margins[active[k]] = margin


def _nudged(torch: Any, logits: Any, nudge: Nudge, made: list[list[int]], active: list[int]) -> Any:
    """The logits with each active row's bias on `nudge.token` where its reply so far (`made`,
    by original row) is `nudge.after`."""
    after = list(nudge.after)
    offsets = [nudge.bias[row] if made[row] == after else 0.0 for row in active]
    if not any(offsets):
        return logits
    logits = logits.clone()
    logits[:, nudge.token] += torch.tensor(offsets, dtype=logits.dtype, device=logits.device)
    return logits


def _guarded(
    torch: Any,
    logits: Any,
    chosen: Any,
    guard: CallGuard,
    active: list[int],
    temperature: float,
    generator: Any,
) -> Any:
    """`chosen` with each token the guard refuses replaced: by the likeliest token it allows
    (greedy) or by another draw without the refused ones (sampled); kept if none of the `TOP`
    likeliest is allowed."""
    tokens = chosen.tolist()
    replaced = False
    for k, row in enumerate(active):
        if not guard.refuses(row, tokens[k]):
            continue
        allowed = _allowed(torch, logits[k : k + 1], tokens[k], guard, row, temperature, generator)
        if allowed is not None:
            tokens[k] = allowed
            guard.refused[row] += 1
            replaced = True
    return torch.tensor(tokens, device=chosen.device) if replaced else chosen


def _allowed(
    torch: Any,
    row_logits: Any,
    refused: int,
    guard: CallGuard,
    row: int,
    temperature: float,
    generator: Any,
) -> int | None:
    """The token the guard allows in place of `refused`, from at most `TOP` candidates."""
    if temperature <= 0:
        candidates = row_logits[0].topk(TOP).indices.tolist()
        return next((t for t in candidates if not guard.refuses(row, t)), None)
    row_logits = row_logits.clone()
    for _ in range(TOP):
        row_logits[0, refused] = -math.inf
        refused = int(_pick(torch, row_logits, temperature, generator)[0])
        if not guard.refuses(row, refused):
            return refused
    return None


def _pick(torch: Any, logits: Any, temperature: float, generator: Any) -> Any:
    if temperature <= 0:
        return logits.argmax(dim=-1)
    probabilities = torch.softmax(logits.float() / temperature, dim=-1)
    return torch.multinomial(probabilities, 1, generator=generator).squeeze(1)
