"""The embedded model: answers, batches without changing greedy output, runs the tool loop."""

import asyncio

import pytest

from fcsft.models.base import ChatRequest
from fcsft.models.local import _cut


class Tok:
    pad_token_id = 0


def test_cut_keeps_closing_answer_tag_and_drops_other_stops():
    text, n = _cut("<final_answer>4</final_answer> and more", [], [5, 6, 0, 0], Tok())
    assert text == "<final_answer>4</final_answer>" and n == 2
    text, _ = _cut(
        '<tool_call>{"name": "a"}</tool_call>\n<observation>made up', ["<observation"], [1], Tok()
    )
    assert text == '<tool_call>{"name": "a"}</tool_call>'


@pytest.mark.slow
def test_embedded_model_answers_batches_and_runs_the_loop():
    from fcsft.agent import run_agent
    from fcsft.models.registry import load_model
    from fcsft.tools import Toolbox

    async def main():
        model = load_model("local:smollm2")
        reply = await model.chat(
            ChatRequest(
                model="smollm2",
                max_tokens=16,
                messages=[{"role": "user", "content": "What is the capital of France?"}],
            )
        )
        assert "Paris" in reply.message["content"] and reply.completion_tokens > 0
        requests = [
            ChatRequest(
                model="smollm2",
                max_tokens=12,
                messages=[{"role": "user", "content": f"Say a word about the number {i}."}],
            )
            for i in range(6)
        ]
        together = await asyncio.gather(*(model.chat(r) for r in requests))
        alone = [await model.chat(r) for r in requests]
        assert [r.message for r in together] == [r.message for r in alone]

        def add(a: int, b: int) -> int:
            """Add two integers.

            Args:
                a: First.
                b: Second.
            """
            return a + b

        trajectory = await run_agent(
            model,
            "smollm2",
            "Use the add tool to add 2 and 3.",
            Toolbox([add]),
            ident="t",
            limits=__import__("fcsft.agent", fromlist=["Limits"]).Limits(
                max_steps=2, reply_tokens=64
            ),
        )
        assert trajectory.meta.model_extra["stop"] in {
            "final_answer",
            "parse_error",
            "step_limit",
            "repeated_call",
        }

    asyncio.run(main())
