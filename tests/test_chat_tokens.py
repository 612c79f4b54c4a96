"""The label mask: loss on assistant tokens only, every assistant token kept."""

import json
from pathlib import Path

import pytest

tokenizers = pytest.importorskip("tokenizers")
transformers = pytest.importorskip("transformers")

from fcsft.formats.chat import text_messages  # noqa: E402
from fcsft.formats.chat_tokens import render_example, segments  # noqa: E402

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
EXAMPLE = Path(__file__).parents[1] / "examples" / "trajectories" / "finance.openai.jsonl"


def char_tokenizer(extra: str = ""):
    """A character-level tokenizer built here (no download), with ChatML special tokens, that
    knows every character of the example records and of `extra`."""
    records = EXAMPLE.read_text() + extra
    alphabet = sorted(set(records + CHATML + "".join(json.dumps(r) for r in records.split())))
    vocab = {"[UNK]": 0, "<|im_start|>": 1, "<|im_end|>": 2}
    for char in alphabet:
        vocab.setdefault(char, len(vocab))
    model = tokenizers.models.WordLevel(vocab, unk_token="[UNK]")
    raw = tokenizers.Tokenizer(model)
    raw.pre_tokenizer = tokenizers.pre_tokenizers.Split("", "isolated")
    raw.decoder = tokenizers.decoders.Fuse()
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]")
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tokenizer.chat_template = CHATML
    return tokenizer


@pytest.mark.parametrize("line", [0, 1, 2])
def test_labels_mask_everything_but_assistant_turns(line):
    tokenizer = char_tokenizer()
    record = json.loads(EXAMPLE.read_text().splitlines()[line])
    example = render_example(tokenizer, record)
    labels = example.labels
    assert len(labels) == len(example.input_ids)
    # Rebuild each span from the ids: masked runs must be exactly the assistant pieces.
    pieces = segments(tokenizer, record)
    position = 0
    for text, is_assistant in pieces:
        count = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        span = labels[position : position + count]
        if is_assistant:
            assert span == example.input_ids[position : position + count]
            assert tokenizer.decode(span).startswith(("<think>", "<tool_call>", "<final_answer>"))
        else:
            assert set(span) == {-100}
        position += count
    assert position == len(labels)
    # Every assistant message's tagged text is in the learned tokens, and nothing else is.
    learned = tokenizer.decode([t for t in labels if t != -100])
    messages = text_messages(record["messages"], record["tools"])
    for message in messages:
        if message["role"] == "assistant":
            assert message["content"] in learned
        else:
            assert message["content"] not in learned
    assert learned.count("<|im_end|>") == sum(m["role"] == "assistant" for m in messages)


def test_every_assistant_turn_of_a_conversation_with_follow_ups_is_learned():
    from fcsft.formats import get_format
    from multi_turn import three_user_turns

    record = get_format("openai-finetune").render(three_user_turns())
    tokenizer = char_tokenizer(json.dumps(record))
    example = render_example(tokenizer, record)
    learned = tokenizer.decode([t for t in example.labels if t != -100])
    messages = text_messages(record["messages"], record["tools"])
    assistant = [m["content"] for m in messages if m["role"] == "assistant"]
    users = [m["content"] for m in messages if m["role"] == "user"]
    assert len(assistant) == 5 and len(users) == 3
    assert learned == "".join(f"{content}<|im_end|>\n" for content in assistant)
    assert not any(content in learned for content in users)
