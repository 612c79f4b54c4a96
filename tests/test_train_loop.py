"""The training loop on a tiny model built here: it steps, records its precision, and a run
stopped after a checkpoint resumes to the same weights as one that never stopped."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys

import pytest
import yaml

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")

from fcsft.train.run import TrainConfig, learning_rate, train  # noqa: E402
from test_chat_tokens import EXAMPLE, char_tokenizer  # noqa: E402
from tiny_llama import tiny_llama  # noqa: E402


@pytest.fixture
def tiny_folder(tmp_path):
    tokenizer = char_tokenizer()
    model = tiny_llama(
        vocab=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        max_position_embeddings=8192,
    )
    folder = tmp_path / "tiny"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def settings(folder, **changes) -> TrainConfig:
    values = dict(
        base=f"local:{folder}",
        steps=4,
        batch_size=1,
        max_length=8192,
        save_steps=2,
        val_share=0.0,
        lora_dropout=0.0,
        precision="fp32",
        learning_rate=1e-2,
    )
    return TrainConfig(**(values | changes))


def weights(folder) -> dict:
    model = transformers.AutoModelForCausalLM.from_pretrained(folder)
    return {name: value.clone() for name, value in model.state_dict().items()}


def test_a_stopped_run_resumes_to_the_same_weights(tiny_folder, tmp_path):
    whole, _ = train(settings(tiny_folder), EXAMPLE, tmp_path / "whole", on_step=None)
    assert whole["steps"] == 4 and len(whole["losses"]) == 4
    assert whole["precision"]["precision"] == "fp32"

    def stop_after_three(step, total, tokens, elapsed):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(settings(tiny_folder), EXAMPLE, tmp_path / "cut", on_step=stop_after_three)
    assert [p.name for p in (tmp_path / "cut" / "checkpoints").iterdir()] == ["checkpoint-2"]
    resumed, _ = train(settings(tiny_folder), EXAMPLE, tmp_path / "cut", on_step=None)
    assert resumed["losses"] == whole["losses"]
    a, b = weights(tmp_path / "whole" / "model"), weights(tmp_path / "cut" / "model")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    base = weights(tiny_folder)
    assert any(not torch.equal(a[k], base[k]) for k in a)  # it did learn something


def test_learning_rate_warms_up_then_falls_to_zero():
    rates = [learning_rate(step, 10, 1.0, 2) for step in range(10)]
    assert rates[:2] == [0.5, 1.0]
    assert rates[2] == pytest.approx(1.0) and all(a >= b for a, b in itertools.pairwise(rates[2:]))
    assert learning_rate(10, 10, 1.0, 2) == pytest.approx(0.0)


def test_a_snapshot_is_the_model_at_its_step(tiny_folder, tmp_path):
    """OUT/model-step-2 of a 4-step run holds the base weights plus the step-2 checkpoint's
    adapters, merged by peft here: the same step of the same schedule, not a shorter run."""
    peft = pytest.importorskip("peft")
    train(settings(tiny_folder, snapshots=[2]), EXAMPLE, tmp_path / "run", on_step=None)
    snapshot = weights(tmp_path / "run" / "model-step-2")

    def stop_after_two(step, total, tokens, elapsed):
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(settings(tiny_folder), EXAMPLE, tmp_path / "cut", on_step=stop_after_two)
    state = torch.load(tmp_path / "cut" / "checkpoints" / "checkpoint-2" / "state.pt")
    config = settings(tiny_folder)
    model = peft.get_peft_model(
        transformers.AutoModelForCausalLM.from_pretrained(tiny_folder),
        peft.LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            target_modules=config.target_modules,
            lora_dropout=0.0,
        ),
    )
    model.load_state_dict(state["weights"], strict=False)
    expected = model.merge_and_unload().state_dict()
    assert snapshot.keys() == expected.keys()
    assert all(torch.allclose(snapshot[k], expected[k], atol=1e-6) for k in snapshot)
    final, base = weights(tmp_path / "run" / "model"), weights(tiny_folder)
    assert any(not torch.equal(snapshot[k], final[k]) for k in snapshot)
    assert any(not torch.equal(snapshot[k], base[k]) for k in snapshot)


@pytest.mark.parametrize("steps", [[4], [0]])
def test_a_snapshot_outside_the_run_is_refused(tiny_folder, steps):
    with pytest.raises(ValueError, match="snapshots"):
        settings(tiny_folder, snapshots=steps)


def test_fcsft_train_prints_each_step_with_its_rate_and_time_left(tiny_folder, tmp_path):
    from clirun import fcsft

    project = tmp_path / "project.yaml"
    project.write_text(
        f"train: {{base: 'local:{tiny_folder}', steps: 3, batch_size: 1, max_length: 8192, "
        "save_steps: 2, val_share: 0.0, precision: fp32}\n"
    )
    done = fcsft(
        "train", "--data", EXAMPLE, "--out", tmp_path / "out", "--config", project, timeout=300
    )
    assert done.returncode == 0, done.stderr
    steps = [line for line in done.stderr.splitlines() if line.startswith("train step ")]
    assert [line.split(",")[0] for line in steps] == [f"train step {k}/3" for k in (1, 2, 3)]
    assert all("tokens/s" in line and "s left" in line for line in steps)


def test_a_resumed_run_s_rate_and_time_left_count_only_its_own_steps(caplog):
    from fcsft.train.run import Progress

    progress = Progress()
    with caplog.at_level("INFO", logger="fcsft"):
        progress(11, 20, 400, 10.0)  # resumed after step 10: one step here, 400 tokens, 10 s
        progress(12, 20, 800, 20.0)
    assert caplog.messages == [
        "train step 11/20, 40 tokens/s, about 90 s left",
        "train step 12/20, 40 tokens/s, about 80 s left",
    ]


def test_a_run_stopped_at_a_step_is_the_full_runs_snapshot_there(tiny_folder, tmp_path):
    """stop_at=3 of a 4-step schedule ends where the full run's step-3 snapshot is, with the
    same weights; a 3-step schedule (whose learning rate falls sooner) ends elsewhere."""
    train(settings(tiny_folder, snapshots=[3]), EXAMPLE, tmp_path / "full", on_step=None)
    short, _ = train(settings(tiny_folder, stop_at=3), EXAMPLE, tmp_path / "short", on_step=None)
    assert short["steps"] == 3
    a, b = weights(tmp_path / "full" / "model-step-3"), weights(tmp_path / "short" / "model")
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    train(settings(tiny_folder, steps=3), EXAMPLE, tmp_path / "three", on_step=None)
    c = weights(tmp_path / "three" / "model")
    assert any(not torch.allclose(b[k], c[k], atol=1e-6) for k in b)


def test_a_stop_past_the_schedule_is_refused(tiny_folder):
    with pytest.raises(ValueError, match="stop_at 5"):
        settings(tiny_folder, stop_at=5)


def test_ctrl_c_ends_fcsft_train_at_a_checkpoint_the_rerun_resumes_from(tiny_folder, tmp_path):
    """The training runs in a thread the interpreter would wait for: Ctrl-C must reach it. The
    run (checkpoints every 1,000 of 100,000 steps) stops within a step of the SIGINT, writes a
    checkpoint where it stopped, exits non-zero, and the same command resumes from it."""
    project = tmp_path / "project.yaml"
    train_section = {
        "base": f"local:{tiny_folder}",
        "steps": 100_000,
        "save_steps": 1_000,
        "batch_size": 1,
        "max_length": 8192,
        "val_share": 0.0,
        "precision": "fp32",
    }
    project.write_text(yaml.safe_dump({"name": "tiny", "train": train_section}))
    command = [sys.executable, "-m", "fcsft.cli", "train", "--data", str(EXAMPLE)]
    command += ["--out", str(tmp_path / "run" / "train"), "--config", str(project)]
    child = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    for line in child.stderr:
        if "train step 3/" in line:
            break
    child.send_signal(signal.SIGINT)
    try:
        child.wait(timeout=60)
    except subprocess.TimeoutExpired:
        child.kill()
        pytest.fail("fcsft train went on after Ctrl-C")
    assert child.returncode == 130
    assert "the same command resumes" in child.stderr.read()
    [checkpoint] = (tmp_path / "run" / "train" / "checkpoints").iterdir()
    stopped = int(checkpoint.name.split("-")[1])
    assert 3 <= stopped < 1_000

    again = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    for line in again.stderr:
        if "train step" in line:
            break
    again.kill()
    again.wait()
    assert f"train step {stopped + 1}/100000" in line


def test_the_adapter_alone_merges_back_into_the_trained_model(tiny_folder, tmp_path, monkeypatch):
    """model/adapter (and a snapshot's) holds the LoRA weights alone; local:FOLDER/adapter
    merges them into the base again, into the cache, giving the weights of the merged model
    the run wrote."""
    from fcsft.models.weights import model_folder

    monkeypatch.setenv("FCSFT_CACHE", str(tmp_path / "cache"))
    train(settings(tiny_folder, snapshots=[2]), EXAMPLE, tmp_path / "run", on_step=None)
    for name in ("model", "model-step-2"):
        adapter = tmp_path / "run" / name / "adapter"
        assert (adapter / "adapter_model.safetensors").exists()
        merged = model_folder(str(adapter))
        assert merged.parent == tmp_path / "cache" / "models"
        a, b = weights(tmp_path / "run" / name), weights(merged)
        assert a.keys() == b.keys()
        assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
        assert model_folder(str(adapter)) == merged  # made once
    assert model_folder(str(tmp_path / "run" / "model" / "adapter")) != model_folder(
        str(tmp_path / "run" / "model-step-2" / "adapter")
    )


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "not a transformers model folder"),
        ({"fcsft_base.json": '{"base": "local:smollm2"}'}, "no adapter_model.safetensors"),
        (
            {"fcsft_base.json": '{"base": "openai:gpt"}', "adapter_model.safetensors": "x"},
            "is not a local: model",
        ),
    ],
)
def test_a_folder_that_is_neither_model_nor_adapter_says_what_it_lacks(tmp_path, files, message):
    from fcsft.errors import UserError
    from fcsft.models.weights import model_folder

    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(UserError, match=message):
        model_folder(str(tmp_path))
