"""`local:smollm2` (the embedded default) and `local:PATH` (any transformers folder).

Concurrent requests are queued and answered in batches by one worker thread: on two CPU
cores greedy decoding of SmolLM2-135M runs ~11 tokens/s at batch 1 and ~108 at batch 32, so
a teacher run of many tasks is only practical batched. Requests join a batch when they share
sampling settings; each row stops as soon as it writes a stop string.

Messages arrive in one of two shapes. With `request.tools` (native function calling) they are
OpenAI messages, rendered here by `fcsft.formats.chat.text_messages` and the reply parsed back
into `tool_calls` by the tagged parser. Without tools they are plain role/content messages
(the agent loop's tagged mode renders them itself) and go to the chat template as they are.
Either way the raw completion is kept in `extra["raw"]`, so evaluation can count replies
that did not parse.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from fcsft.errors import require
from fcsft.formats import FormatError
from fcsft.formats.chat import text_messages
from fcsft.formats.tagged import parse_reply
from fcsft.models.base import ChatRequest, ChatResponse, ModelError
from fcsft.models.registry import register
from fcsft.models.weights import model_folder

# A final answer ends a reply and its closing tag belongs to it. `</tool_call>` is no stop:
# parallel calls follow one another before the model stops or an `<observation` stop hits.
KEEP_STOPS = ("</final_answer>",)


@dataclass
class _Job:
    request: ChatRequest
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    prompt: str = ""


@dataclass
class _Engine:
    """One loaded model per folder and process, shared by every provider that names it."""

    folder: str
    model: Any = None
    tokenizer: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def load(self) -> None:
        with self.lock:
            if self.model is not None:
                return
            torch = require("torch", "local")
            transformers = require("transformers", "local")
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(self.folder)
            self.tokenizer.padding_side = "left"
            if self.tokenizer.pad_token is None:
                self.tokenizer.pad_token = self.tokenizer.eos_token
            dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
            model = transformers.AutoModelForCausalLM.from_pretrained(self.folder, dtype=dtype)
            self.model = model.to("cuda" if torch.cuda.is_available() else "cpu").eval()


_ENGINES: dict[str, _Engine] = {}


class LocalProvider:
    def __init__(self, name: str, max_batch: int = 32, wait_s: float = 0.02):
        self.name = f"local:{name}"
        folder = str(model_folder(name))
        self.engine = _ENGINES.setdefault(folder, _Engine(folder))
        self.max_batch = max_batch
        self.wait_s = wait_s
        self._queue: list[_Job] = []
        self._wake = threading.Condition()
        self._worker: threading.Thread | None = None

    async def chat(self, request: ChatRequest) -> ChatResponse:
        loop = asyncio.get_running_loop()
        job = _Job(request, loop.create_future(), loop)
        with self._wake:
            self._queue.append(job)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._serve, daemon=True)
                self._worker.start()
            self._wake.notify()
        return await job.future

    async def close(self) -> None:
        pass

    def _serve(self) -> None:
        self.engine.load()
        while True:
            with self._wake:
                while not self._queue:
                    if not self._wake.wait(timeout=5.0) and not self._queue:
                        self._worker = None  # idle: a later request starts a new worker
                        return
            time.sleep(self.wait_s)  # let concurrent callers join before the batch is cut
            with self._wake:
                key = _settings(self._queue[0].request)
                batch = [job for job in self._queue if _settings(job.request) == key]
                batch = batch[: self.max_batch]
                for job in batch:
                    self._queue.remove(job)
            try:
                results: list[ChatResponse | ModelError] = list(self._generate(batch))
            except Exception as exc:
                results = [ModelError(f"{self.name}: generation failed: {exc}")] * len(batch)
            for job, result in zip(batch, results, strict=True):
                job.loop.call_soon_threadsafe(_settle, job.future, result)

    def _generate(self, batch: list[_Job]) -> list[ChatResponse]:
        torch = require("torch", "local")
        tokenizer, model = self.engine.tokenizer, self.engine.model
        for job in batch:
            messages = job.request.messages
            if job.request.tools:
                messages = text_messages(messages, job.request.tools)
            job.prompt = tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        encoded = tokenizer(
            [job.prompt for job in batch],
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
        ).to(model.device)
        request = batch[0].request
        stops = sorted({s for job in batch for s in (job.request.stop or [])} | set(KEEP_STOPS))
        started = time.monotonic()
        sampling = (
            {"do_sample": True, "temperature": request.temperature, "top_p": 0.95}
            if request.temperature > 0
            else {"do_sample": False}
        )
        with torch.inference_mode():
            output = model.generate(
                **encoded,
                max_new_tokens=max(job.request.max_tokens for job in batch),
                stop_strings=stops,
                tokenizer=tokenizer,
                pad_token_id=tokenizer.pad_token_id,
                **sampling,
            )
        latency = time.monotonic() - started
        width = encoded["input_ids"].shape[1]
        responses = []
        for row, job in enumerate(batch):
            ids = output[row, width:].tolist()
            text = tokenizer.decode(ids, skip_special_tokens=True)
            text, generated = _cut(text, job.request.stop or [], ids, tokenizer)
            responses.append(
                self._response(
                    job, text, int(encoded["attention_mask"][row].sum()), generated, latency
                )
            )
        return responses

    def _response(
        self, job: _Job, text: str, prompt_tokens: int, completion_tokens: int, latency: float
    ) -> ChatResponse:
        extra: dict[str, Any] = {"raw": text}
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if job.request.tools:
            try:
                message = parse_reply(text)
            except FormatError as exc:
                extra["parse_error"] = str(exc)
        return ChatResponse(
            message=message,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            latency_s=latency,
            extra=extra,
        )


def _settings(request: ChatRequest) -> tuple[float, bool]:
    return (request.temperature, bool(request.tools))


def _cut(text: str, stops: list[str], ids: list[int], tokenizer: Any) -> tuple[str, int]:
    """The reply up to its first stop (closing tags kept, other stops dropped), and its tokens."""
    end = len(text)
    for stop in set(stops) | set(KEEP_STOPS):
        at = text.find(stop)
        if at >= 0:
            end = min(end, at + (len(stop) if stop in KEEP_STOPS else 0))
    text = text[:end]
    pad = tokenizer.pad_token_id
    generated = len([i for i in ids if i != pad])
    return text.strip(), generated


def _settle(future: asyncio.Future, result: ChatResponse | ModelError) -> None:
    if future.done():
        return
    if isinstance(result, ModelError):
        future.set_exception(result)
    else:
        future.set_result(result)


@register("local")
def local_provider(rest: str, **options: Any) -> LocalProvider:
    """`local:smollm2` or `local:PATH`; network options (keys, timeouts) do not apply."""
    return LocalProvider(rest, max_batch=int(options.get("max_batch", 32)))
