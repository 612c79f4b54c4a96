"""CPU smoke run: SmolLM2-135M learns from 100 exported examples; the model saves, reloads and
answers through `fcsft eval`."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "bench"))


@pytest.mark.slow
def test_lora_smoke_run_loss_falls_and_model_reloads(tmp_path):
    transformers = pytest.importorskip("transformers")
    from fcsft.formats.chat import text_messages
    from fcsft.jsonl import write_jsonl
    from fcsft.train.run import TrainConfig, train
    from validate_speed import synthetic

    data = tmp_path / "train.openai.jsonl"
    records = [synthetic(i) for i in range(100)]
    write_jsonl(data, records)
    config = TrainConfig(
        steps=24, batch_size=2, max_length=384, learning_rate=5e-4, save_steps=12, val_share=0.1
    )
    summary, _ = train(config, data, tmp_path / "out")
    losses = summary["losses"]
    assert summary["steps"] == 24
    assert summary["examples"] + summary["too_long"] == 100  # every conversation accounted for
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 0.2  # it learned something
    folder = tmp_path / "out" / "model"
    assert (folder / "fcsft.json").exists() and (folder / "config.json").exists()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder)
    prompt = tokenizer.apply_chat_template(
        text_messages(records[0]["messages"][:1], records[0]["tools"]),
        tokenize=False,
        add_generation_prompt=True,
    )
    ids = tokenizer(prompt, return_tensors="pt")
    output = model.generate(**ids, max_new_tokens=40, do_sample=False)
    reply = tokenizer.decode(output[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "<tool_call>" in reply or "<think>" in reply  # the tagged format was learned

    # The trained folder is a valid --model for fcsft eval, served the text it was trained on.
    from clirun import fcsft
    from fcsft.evaluate.testset import gold_of
    from fcsft.formats import get_format

    items = []
    for record in records[:8]:
        trajectory = get_format("openai").parse(record)
        items.append(
            {
                "id": trajectory.id,
                "layer": "standard",
                "question": trajectory.question,
                "tools": record["tools"],
                "gold": gold_of(trajectory)[:1],
            }
        )
    write_jsonl(tmp_path / "items.jsonl", items)
    done = fcsft(
        "eval",
        "--model",
        str(folder),
        "--items",
        str(tmp_path / "items.jsonl"),
        "--out",
        str(tmp_path / "eval"),
        "--max-tokens",
        "96",
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["model"] == f"local:{folder.resolve()}" and report["scored"] == 8
    assert report["layers"]["all"]["tool_selection"]["k"] >= 1  # it calls tools now
