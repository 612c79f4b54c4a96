"""`local:smollm2` (the embedded default) and `local:PATH` (any transformers model folder).

Why batching: one sequence at a time leaves a CPU's matrix units mostly idle (each step
multiplies a single row of activations by every weight), while many sequences side by side
share the cost of reading the weights, so a teacher or evaluation run of many tasks is only
practical if concurrent requests share forward passes. `chat()` is async and cheap:
it renders the prompt and queues a job; one worker thread per model cuts the queue into
batches of requests with the same sampling settings and of similar length, and decodes each
with `fcsft.models.decode`: the prompt prefix the rows share (a system prompt and tool list
offered to many items) is computed once, and a row leaves the batch as soon as it ends (end of
turn, a stop string such as the closing tag of a call or answer, its token limit). Padding is
masked and skipped by the position ids, so a row's output does not depend on its neighbours
and greedy text is the same batched or alone. `precision` (`fcsft.models.precision`) picks
bf16 or float32 weights.

Why two prompt paths: a request that uses OpenAI function calling (`tools`, assistant
`tool_calls`, `role: tool` answers) is rendered by `fcsft.formats.chat.text_messages`, the
same function training renders with, and the reply is parsed back by the tagged parser.
Plain role/content messages without tools are already text (the agent's tagged mode renders
them itself) and are passed to the chat template untouched; rendering them twice would wrap
tagged turns in more tags. Either way the completion as generated is kept in
`extra["raw"]`, and a reply that does not parse keeps its text as content with the error in
`extra["parse_error"]`, so evaluation counts parse failures apart from answers.

`call_bias` (0 by default) is added to the log-odds of opening a tool call where a reply to
a request with tools chooses between `<tool_call>` and `<final_answer>`: a threshold on the
model's own choice, to be set on a dev split (negative: calls less often), nothing else changed.
Every reply is decoded with a call guard (`fcsft.models.guard`): inside a `<tool_call>` a token
that would make the call's JSON unparseable, or a call no offered function takes (an unknown
name or argument, a missing required one, a value of the wrong type), is replaced by the
likeliest one that keeps it valid.

The weights are loaded on the first request, once per process and model folder, whatever
number of providers name it; `fcsft.models.weights` turns the shipped GGUF into a cached
transformers folder the first time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fcsft.errors import UserError, require
from fcsft.formats import FormatError
from fcsft.formats.chat import text_messages
from fcsft.formats.tagged import ANSWER_OPEN, CALL_OPEN, REPLY_STOPS, parse_reply
from fcsft.models.base import ChatRequest, ChatResponse, ModelError
from fcsft.models.decode import Nudge, decode, shared_prefix
from fcsft.models.guard import CallGuard, CallSchema, token_pieces
from fcsft.models.precision import Choice, choose
from fcsft.models.registry import register
from fcsft.models.weights import EMBEDDED, cache_dir, gguf_folder, model_folder, weights_id

_CLOSING_TAG = re.compile(r"</[^<>\s]+>")
# Logit differences below this may come out either way in another batch (padding and batch
# size change the float sums), so a reply that close to the call choice is generated again.
MARGIN_NOISE = 1e-3
# Part of a local model's cache name: replies written by an earlier decoder (before the call
# guard held calls to the offered functions' schemas) are not this one's and are asked again.
DECODER = "call-schema"


@dataclass(frozen=True)
class GenerationJob:
    """What the worker needs for one request: rendered messages and per-row limits."""

    messages: list[dict[str, str]]
    max_new_tokens: int
    stops: tuple[str, ...] = ()
    temperature: float = 0.0
    seed: int | None = None
    keep_closing_tags: bool = True
    call_bias: float = 0.0  # added to the log-odds of opening a tool call (see the module doc)
    tools: list[dict[str, Any]] = field(default_factory=list)  # offered: calls are held to them

    @property
    def settings(self) -> tuple[Any, ...]:
        """Jobs with equal settings can share one `generate` call.

        Greedy decoding ignores the seed, so every greedy job fits every greedy batch; sampled
        jobs must agree on temperature and seed, since both apply to the whole batch.
        """
        if self.temperature <= 0:
            return ("greedy",)
        return ("sample", self.temperature, self.seed)

    @property
    def size(self) -> int:
        """The prompt's length in characters, to batch prompts of similar length together."""
        return sum(len(m.get("content") or "") for m in self.messages)


@dataclass
class Completion:
    """One row's result: its text cut at its stop, and what it cost in tokens."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"  # "stop" (a stop string or end of turn) or "length"
    call_margin: float | None = None  # the unbiased margin of the call choice (`Nudge`)
    guard_refused: int = 0  # tokens the call guard replaced (`fcsft.models.guard`)


GenerateFn = Callable[[list[GenerationJob]], list[Completion | Exception]]


# ---------------------------------------------------------------- stops


def keeps_stop(stop: str, keep_closing_tags: bool) -> bool:
    """A closing tag belongs to the text it closes (`</tool_call>` ends a call that must parse)."""
    return keep_closing_tags and _CLOSING_TAG.fullmatch(stop) is not None


def cut_at_stop(
    text: str, stops: Sequence[str], keep_closing_tags: bool = True
) -> tuple[str, str | None]:
    """The text up to its first stop string, and which stop that was (None if there was none).

    Of two stops found at the same place the longer wins, so `</final_answer>` is not cut to a
    shorter stop that is its prefix.
    """
    best: tuple[int, int, str] | None = None
    for stop in stops:
        if not stop:
            continue
        at = text.find(stop)
        if at >= 0 and (best is None or (at, -len(stop)) < best[:2]):
            best = (at, -len(stop), stop)
    if best is None:
        return text, None
    at, _, stop = best
    return text[: at + len(stop) if keeps_stop(stop, keep_closing_tags) else at], stop


class StopTracker:
    """Which rows of a batch are finished, and after how many generated tokens.

    A row ends at the first of: an end-of-sequence token, one of its stop strings, its own
    token limit. Once ended it stays ended (generate pads it from then on), so the step at
    which it ended is its exact completion length. Stop strings are looked for in the decoded
    tail of the row only: a stop that appears now must end in the newest token, and a tail
    of twice the longest stop's length (plus slack for tokens that decode to partial
    characters) is enough to contain it.
    """

    def __init__(
        self,
        limits: Sequence[int],
        stops: Sequence[Sequence[str]],
        eos_ids: set[int],
        decode: Callable[[list[int]], str],
    ):
        self.limits = list(limits)
        self.stops = [tuple(s for s in row if s) for row in stops]
        self.eos_ids = eos_ids
        self.decode = decode
        self.lengths: list[int | None] = [None] * len(self.limits)
        self.reasons = ["length"] * len(self.limits)
        longest = max((len(s) for row in self.stops for s in row), default=0)
        self.window = 2 * longest + 8

    def step(self, tails: Sequence[Sequence[int]], generated: int) -> list[bool]:
        """Update from each row's newest tokens (`generated` so far); True where a row is done."""
        for row, tail in enumerate(tails):
            if self.lengths[row] is not None or not tail:
                continue
            if tail[-1] in self.eos_ids or self._wrote_stop(row, tail):
                self._finish(row, generated, "stop")
            elif generated >= self.limits[row]:
                self._finish(row, generated, "length")
        return [length is not None for length in self.lengths]

    def _wrote_stop(self, row: int, tail: Sequence[int]) -> bool:
        if not self.stops[row]:
            return False
        text = self.decode(list(tail))
        return any(stop in text for stop in self.stops[row])

    def _finish(self, row: int, generated: int, reason: str) -> None:
        self.lengths[row] = generated
        self.reasons[row] = reason


# ---------------------------------------------------------------- the model


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class LocalModel:
    """One set of weights in memory, shared by every provider that names the same folder."""

    def __init__(self, name: str, threads: int | None = None, precision: str = "auto"):
        self.name = name  # as in `local:NAME`
        self.weights = weights_id(name)
        self.threads = threads
        self.precision = precision
        self.choice: Choice | None = None
        self.folder: str | None = None
        self.model: Any = None
        self.tokenizer: Any = None
        self.eos_ids: set[int] = set()
        self.context: int | None = None
        self.load_s: float | None = None
        self._choice: tuple[tuple[int, ...], int] | None = None
        self._pieces: list[bytes | None] | None = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load once; the embedded model's cached folder is made here if it is missing."""
        with self._lock:
            if self.model is not None:
                return
            started = time.monotonic()
            torch = require("torch", "local")
            transformers = require("transformers", "local")
            folder = model_folder(self.name)
            torch.set_num_threads(self.threads or _cores())
            tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
            if not tokenizer.chat_template:
                raise UserError(
                    f"local:{self.name}: the tokenizer in {folder} has no chat template; "
                    "use a chat (instruct) model or a folder written by `fcsft train`"
                )
            tokenizer.padding_side = "left"  # new tokens must follow every row's last token
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            choice = choose(self.precision, f"local:{self.name} precision")
            model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=choice.dtype())
            model = model.to(choice.device).eval()
            self.choice = choice
            self.eos_ids = _eos_ids(model, tokenizer)
            self.context = getattr(model.config, "max_position_embeddings", None)
            self.folder, self.tokenizer = str(folder), tokenizer
            self.model = model
            self.load_s = time.monotonic() - started

    def call_choice(self) -> tuple[tuple[int, ...], int]:
        """Where a reply chooses between calling and answering: the tokens both openers start
        with, and the first token of the call opener after them."""
        if self._choice is None:
            call, answer = (
                self.tokenizer(text, add_special_tokens=False)["input_ids"]
                for text in (CALL_OPEN, ANSWER_OPEN)
            )
            shared = shared_prefix([call, answer])
            self._choice = (tuple(call[:shared]), call[shared])
        return self._choice

    def pieces(self) -> list[bytes | None]:
        """Each token's bytes, for the call guard."""
        if self._pieces is None:
            self._pieces = token_pieces(self.tokenizer)
        return self._pieces

    def prompt(self, messages: list[dict[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )

    def generate(self, jobs: list[GenerationJob]) -> list[Completion | Exception]:
        """One batch of jobs with equal settings; a job that cannot run fails alone."""
        self.load()
        results: list[Completion | Exception | None] = [None] * len(jobs)
        runnable: list[int] = []
        prompts: list[str] = []
        for index, job in enumerate(jobs):
            try:
                prompts.append(self.prompt(job.messages))
            except Exception as exc:  # a template that refuses these messages fails this job
                results[index] = ModelError(f"local:{self.name}: chat template failed: {exc}")
                continue
            runnable.append(index)
        if runnable:
            done = self._generate([jobs[i] for i in runnable], prompts)
            for index, result in zip(runnable, done, strict=True):
                results[index] = result
        return [r if r is not None else ModelError("no result") for r in results]

    def _generate(
        self, jobs: list[GenerationJob], prompts: list[str]
    ) -> list[Completion | Exception]:
        # the chat template already wrote every special token the prompt needs
        token_ids = self.tokenizer(prompts, add_special_tokens=False)["input_ids"]
        results: list[Completion | Exception | None] = [None] * len(jobs)
        limits: list[int] = []
        for index, (job, ids) in enumerate(zip(jobs, token_ids, strict=True)):
            room = job.max_new_tokens if self.context is None else self.context - len(ids)
            if room <= 0:
                results[index] = ModelError(
                    f"local:{self.name}: the prompt has {len(ids)} tokens, the model's context "
                    f"is {self.context}"
                )
            limits.append(max(1, min(job.max_new_tokens, room)))
        keep = [i for i, r in enumerate(results) if r is None]
        if not keep:
            return [r for r in results if r is not None]
        batch = [jobs[i] for i in keep]
        tracker = StopTracker(
            [limits[i] for i in keep],
            [job.stops for job in batch],
            self.eos_ids,
            lambda ids: self.tokenizer.decode(ids, skip_special_tokens=True),
        )
        first = batch[0]
        after, token = self.call_choice()  # every batch: the margins are recorded at bias 0 too
        nudge = Nudge(after, token, [job.call_bias for job in batch])
        guard = CallGuard(self.pieces(), [CallSchema(job.tools) for job in batch])
        made = decode(
            self.model,
            [token_ids[i] for i in keep],
            tracker,
            pad_id=self.tokenizer.pad_token_id,
            temperature=first.temperature,
            seed=first.seed,
            nudge=nudge,
            guard=guard,
        )
        for row, index in enumerate(keep):
            ids = made[row]
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            text, _ = cut_at_stop(text, jobs[index].stops, jobs[index].keep_closing_tags)
            results[index] = Completion(
                text,
                len(token_ids[index]),
                len(ids),
                tracker.reasons[row],
                nudge.margins[row],
                guard.refused[row],
            )
        return [r if r is not None else ModelError("no result") for r in results]


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    """Every token that ends a turn: the generation config may list several (ChatML models
    often end turns with `<|im_end|>` while the tokenizer's eos is another token)."""
    found: set[int] = set()
    for value in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(value, int):
            found.add(value)
        elif isinstance(value, list | tuple):
            found.update(int(v) for v in value)
    return found


# ---------------------------------------------------------------- batching


@dataclass
class _Pending:
    job: GenerationJob
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop

    def settle(self, result: Completion | Exception) -> None:
        with contextlib.suppress(RuntimeError):  # the caller's loop is gone: nobody waits
            self.loop.call_soon_threadsafe(_settle, self.future, result)


def _settle(future: asyncio.Future, result: Completion | Exception) -> None:
    if future.done():  # cancelled while it waited
        return
    if isinstance(result, Exception):
        future.set_exception(result)
    else:
        future.set_result(result)


class Batcher:
    """Queues jobs from any event loop and answers them in batches from one worker thread.

    The worker starts with the first job and ends after `idle_s` without work, so an idle
    process holds no thread. When a job arrives the worker waits `collect_s` for company
    (or until the batch is full), then takes the oldest job and every queued job with the same
    settings, oldest first, up to `max_batch`; the rest wait for the next round.
    """

    def __init__(
        self,
        generate: GenerateFn,
        *,
        max_batch: int = 32,
        collect_s: float = 0.005,
        idle_s: float = 30.0,
        name: str = "local",
    ):
        if max_batch < 1:
            raise UserError(f"{name}: max_batch must be at least 1, got {max_batch}")
        self.generate = generate
        self.max_batch = max_batch
        self.collect_s = collect_s
        self.idle_s = idle_s
        self.name = name
        self.batch_sizes: list[int] = []  # for benchmarks and tests: what was run together
        self._pending: list[_Pending] = []
        self._wake = threading.Condition()
        self._worker: threading.Thread | None = None

    async def submit(self, job: GenerationJob) -> Completion:
        loop = asyncio.get_running_loop()
        pending = _Pending(job, loop.create_future(), loop)
        with self._wake:
            self._pending.append(pending)
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._serve, name=f"fcsft-{self.name}", daemon=True
                )
                self._worker.start()
            self._wake.notify()
        return await pending.future

    def _serve(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self.batch_sizes.append(len(batch))
            try:
                results = self.generate([p.job for p in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"{len(results)} results for {len(batch)} jobs")
            except UserError as exc:  # e.g. missing weights: the user must see it as such
                results = [exc] * len(batch)
            except Exception as exc:  # a failed batch fails its requests, never the worker
                error = ModelError(f"{self.name}: generation failed: {type(exc).__name__}: {exc}")
                results = [error] * len(batch)
            for pending, result in zip(batch, results, strict=True):
                pending.settle(result)

    def _next_batch(self) -> list[_Pending] | None:
        """The next batch, or None (and the worker slot freed) after `idle_s` with no work."""
        with self._wake:
            while True:
                idle_until = time.monotonic() + self.idle_s
                while not self._pending:
                    left = idle_until - time.monotonic()
                    if left <= 0:
                        self._worker = None  # under the lock: a new job starts a new worker
                        return None
                    self._wake.wait(left)
                collect_until = time.monotonic() + self.collect_s
                while len(self._pending) < self.max_batch:
                    left = collect_until - time.monotonic()
                    if left <= 0:
                        break
                    self._wake.wait(left)
                self._pending = [p for p in self._pending if not p.future.done()]
                if not self._pending:
                    continue
                settings = self._pending[0].job.settings
                batch = similar_sized(
                    [p for p in self._pending if p.job.settings == settings], self.max_batch
                )
                taken = {id(p) for p in batch}
                self._pending = [p for p in self._pending if id(p) not in taken]
                return batch


def similar_sized(candidates: list[_Pending], max_batch: int) -> list[_Pending]:
    """At most `max_batch` of the candidates: the oldest (the first) and those nearest it in
    size, so that a batch pads little and the oldest job never waits for a later round."""
    if len(candidates) <= max_batch:
        return candidates
    ranked = sorted(range(len(candidates)), key=lambda k: candidates[k].job.size)
    at = ranked.index(0)
    sizes = [candidates[k].job.size for k in ranked]
    best = max(0, at - max_batch + 1)
    for start in range(best, min(at, len(ranked) - max_batch) + 1):
        if sizes[start + max_batch - 1] - sizes[start] < sizes[best + max_batch - 1] - sizes[best]:
            best = start
    return [candidates[k] for k in sorted(ranked[best : best + max_batch])]


# ---------------------------------------------------------------- the provider


_LOCK = threading.Lock()
_MODELS: dict[Any, LocalModel] = {}
_BATCHERS: dict[Any, Batcher] = {}


def _model_key(name: str) -> Any:
    """What identifies one set of weights, checked without loading them so that a provider
    fails at once.

    The embedded model is keyed by the cache it lives in (a test may point `FCSFT_CACHE`
    elsewhere); a folder by its resolved path and its weights' digest (a model retrained into
    it is loaded anew; hashing 540 MB takes about a second). If the embedded model is neither
    cached nor installed, that is said now rather than on the first request.
    """
    if name in EMBEDDED:
        cache = cache_dir()
        if not (cache / "models" / name / "config.json").exists():
            gguf_folder()
        return ("embedded", name, str(cache))
    return ("folder", str(model_folder(name).resolve()), weights_id(name))


def shared_model(name: str, threads: int | None = None, precision: str = "auto") -> LocalModel:
    """The process-wide LocalModel for `local:NAME` in a precision (loaded on first use)."""
    key = (*_model_key(name), precision)
    with _LOCK:
        if key not in _MODELS:
            _MODELS[key] = LocalModel(name, threads, precision)
        return _MODELS[key]


class LocalProvider:
    """A Provider over a local model; providers for one model share its batches."""

    def __init__(
        self,
        name: str,
        *,
        max_batch: int = 32,
        collect_ms: float = 5.0,
        keep_closing_tags: bool = True,
        threads: int | None = None,
        precision: str = "auto",
        call_bias: float = 0.0,
        generate: GenerateFn | None = None,
    ):
        """`generate` replaces the model (tests inject a fake); by default `local:NAME` is used."""
        self.name = f"local:{name}"
        self.call_bias = call_bias
        # Requests worth having in flight when a caller may choose (fcsft eval): several
        # batches queued let the batcher group prompts of similar length, which pads less.
        self.in_flight = 4 * max_batch
        self.keep_closing_tags = keep_closing_tags
        if generate is not None:
            self.model = None
            self.batcher = Batcher(
                generate, max_batch=max_batch, collect_s=collect_ms / 1000, name=self.name
            )
            return
        self.model = shared_model(name, threads, precision)
        key = (id(self.model), max_batch, collect_ms)
        with _LOCK:
            if key not in _BATCHERS:
                _BATCHERS[key] = Batcher(
                    self.model.generate,
                    max_batch=max_batch,
                    collect_s=collect_ms / 1000,
                    name=self.name,
                )
            self.batcher = _BATCHERS[key]

    @property
    def cache_name(self) -> str:
        """The name replies are cached under: the weights' digest (a model retrained in the same
        folder answers anew), the decoder and the call bias (they change them)."""
        name = self._unbiased_name
        return f"{name} call_bias={self.call_bias}" if self.call_bias else name

    @property
    def _unbiased_name(self) -> str:
        if self.model is None:
            return self.name
        return f"{self.name} weights={self.model.weights} decoder={DECODER}"

    @property
    def reuses(self) -> str | None:
        """With a call bias, the cache name of the same weights without one: a reply cached
        there is this provider's reply too where `keeps` says so (a bias sweep then generates
        only the replies whose choice the bias flips)."""
        return self._unbiased_name if self.call_bias else None

    def keeps(self, request: ChatRequest, response: ChatResponse) -> bool:
        """Whether greedy decoding under this bias gives `response`, the unbiased reply to
        `request`, again: its reply never reached the choice, or the call choice keeps its side
        with a margin wider than numeric noise. A sampled reply, or one recorded without a
        margin, is not known to."""
        if request.temperature > 0 or "call_margin" not in response.extra:
            return False
        margin = response.extra["call_margin"]
        if margin is None:
            return True
        shifted = margin + self.call_bias
        return (margin > 0) == (shifted > 0) and min(abs(margin), abs(shifted)) > MARGIN_NOISE

    async def chat(self, request: ChatRequest) -> ChatResponse:
        native = uses_function_calling(request)
        try:
            messages = (
                text_messages(request.messages, request.tools)
                if native
                else [_plain(message) for message in request.messages]
            )
        except (FormatError, KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{self.name}: cannot render the messages: {exc}") from exc
        job = GenerationJob(
            messages=messages,
            max_new_tokens=max(1, request.max_tokens),
            # The tagged protocol's stops, on every request: plain chat never writes them.
            stops=tuple(dict.fromkeys([*(request.stop or []), *REPLY_STOPS])),
            temperature=request.temperature,
            seed=request.seed,
            keep_closing_tags=self.keep_closing_tags,
            call_bias=self.call_bias if native else 0.0,
            tools=list(request.tools or []) if native else [],
        )
        started = time.monotonic()
        completion = await self.batcher.submit(job)
        return chat_response(
            completion, native, time.monotonic() - started, first_call=_calls_made(request)
        )

    async def close(self) -> None:
        """Nothing to release: the weights are shared and the idle worker ends by itself."""


def uses_function_calling(request: ChatRequest) -> bool:
    """Whether the request is in OpenAI function-calling shape, to be rendered as tagged text."""
    if request.tools:
        return True
    for message in request.messages:
        if message.get("tool_calls") or message.get("reasoning_content") is not None:
            return True
        if message.get("role") == "tool" and "tool_call_id" in message:
            return True
    return False


def _plain(message: dict[str, Any]) -> dict[str, str]:
    content = message.get("content")
    if isinstance(content, list):  # OpenAI content parts: only text reaches a text model
        content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return {"role": str(message["role"]), "content": content or ""}


def _calls_made(request: ChatRequest) -> int:
    return sum(
        len(m.get("tool_calls") or []) for m in request.messages if m.get("role") == "assistant"
    )


def chat_response(
    completion: Completion, native: bool, latency_s: float = 0.0, first_call: int = 0
) -> ChatResponse:
    """The ChatResponse for a completion: parsed into tool calls in native mode, raw otherwise."""
    extra: dict[str, Any] = {"raw": completion.text}
    message: dict[str, Any] = {"role": "assistant", "content": completion.text.strip()}
    finish = completion.finish_reason
    if native:
        extra["call_margin"] = completion.call_margin
        extra["guard_refused"] = completion.guard_refused
        try:
            message = parse_reply(completion.text, first_call)
        except FormatError as exc:
            extra["parse_error"] = str(exc)
        else:
            if message.get("tool_calls"):
                finish = "tool_calls"
    return ChatResponse(
        message=message,
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
        finish_reason=finish,
        latency_s=latency_s,
        extra=extra,
    )


@register("local")
def local_provider(
    rest: str,
    *,
    max_batch: int = 32,
    collect_ms: float = 5.0,
    keep_closing_tags: bool = True,
    threads: int | None = None,
    precision: str = "auto",
    call_bias: float = 0.0,
    **_transport_options: Any,
) -> LocalProvider:
    """`local:smollm2` or `local:PATH`. Options meant for network models (keys, timeouts,
    retries) are ignored, so a config can swap an API model for a local one by its URI alone."""
    return LocalProvider(
        rest,
        max_batch=int(max_batch),
        collect_ms=float(collect_ms),
        keep_closing_tags=bool(keep_closing_tags),
        threads=None if threads is None else int(threads),
        precision=str(precision),
        call_bias=float(call_bias),
    )
