"""The command line as a user meets it: real subprocesses, exit codes, one-line errors."""

import json
import re
from pathlib import Path

from clirun import fcsft

EXAMPLE = Path(__file__).parents[1] / "examples" / "trajectories" / "finance.openai.jsonl"


def test_help_lists_the_commands():
    result = fcsft("--help")
    assert result.returncode == 0
    for command in ("convert", "check", "config"):
        assert command in result.stdout


def test_convert_chain_returns_to_the_same_bytes(tmp_path):
    steps = [("openai", "sharegpt"), ("sharegpt", "tagged"), ("tagged", "openai")]
    current = EXAMPLE
    for index, (source, target) in enumerate(steps):
        out = tmp_path / f"{index}.{target}.jsonl"
        result = fcsft("convert", current, out, "--from", source, "--to", target)
        assert result.returncode == 0, result.stderr
        assert "3 converted" in result.stdout
        current = out
    original = [json.loads(line) for line in EXAMPLE.open()]
    assert [json.loads(line) for line in current.open()] == original


def test_convert_with_bad_lines_exits_1_and_keeps_the_good(tmp_path):
    source = tmp_path / "in.jsonl"
    lines = EXAMPLE.read_text().splitlines()
    source.write_text(lines[0] + "\n{not json\n" + lines[1] + "\n")
    result = fcsft("convert", source, tmp_path / "out.jsonl", "--from", "openai", "--to", "tagged")
    assert result.returncode == 1
    assert f"{source}:2: not valid JSON at offset 1" in result.stderr
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 2
    assert json.loads((tmp_path / "out.rejected.jsonl").read_text())["line"] == 2


def test_user_errors_are_one_line_without_traceback(tmp_path):
    result = fcsft("convert", tmp_path / "missing.jsonl", tmp_path / "o.jsonl")
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'missing.jsonl'}: no such file"
    result = fcsft("convert", EXAMPLE, tmp_path / "o.jsonl", "--to", "csv")
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "error: unknown format 'csv'; known: openai, openai-finetune, sharegpt, tagged"
    )


def test_check_reports_every_error_with_its_path(tmp_path):
    config = tmp_path / "project.yaml"
    config.write_text(
        "name: demo\nmodels:\n  teacher:\n    urll: openai:x@http://h\n"
        "    concurrency: 0\nrun_dirr: runs\n"
    )
    result = fcsft("check", config)
    assert result.returncode == 2
    assert "models.teacher.uri: Field required" in result.stderr
    assert "models.teacher.concurrency: Input should be greater than or equal to 1" in result.stderr
    assert "models.teacher.urll: unknown field; did you mean 'uri'?" in result.stderr
    assert "run_dirr: unknown field; did you mean 'run_dir'?" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_accepts_a_good_config_and_names_yaml_errors(tmp_path):
    config = tmp_path / "project.yaml"
    config.write_text("name: demo\nmodels:\n  teacher:\n    uri: local:smollm2\n")
    result = fcsft("check", config)
    assert result.returncode == 0 and "ok (demo" in result.stdout
    config.write_text("name: [demo\n")
    result = fcsft("check", config)
    assert result.returncode == 2 and f"{config}:2:1: not valid YAML" in result.stderr


def test_a_key_pasted_where_its_variables_name_belongs_is_refused_and_not_printed(tmp_path):
    config = tmp_path / "project.yaml"
    pasted = ["sk-proj-" + "Ab3dE9" * 8, "AKIAIOSFODNN7EXAMPLE", "a3f9c2" * 6]
    for value in pasted:
        config.write_text(
            "name: demo\nmodels:\n  teacher:\n    uri: openai:m@http://127.0.0.1:9/v1\n"
            f"    api_key_env: {value}\n"
        )
        result = fcsft("check", config)
        assert result.returncode == 2, value
        assert (
            "models.teacher.api_key_env: Value error, expected the name of an environment "
            "variable, e.g. OPENAI_API_KEY, not a key" in result.stderr
        )
        assert value not in result.stderr + result.stdout
        assert "Traceback" not in result.stderr


def test_check_warns_on_one_line_when_a_models_key_is_not_set(tmp_path, monkeypatch):
    config = tmp_path / "project.yaml"
    config.write_text(
        "name: demo\nmodels:\n  teacher:\n    uri: openai:m@http://127.0.0.1:9/v1\n"
        "    api_key_env: FCSFT_TEST_CHECK_KEY\n  judge:\n    uri: local:smollm2\n"
    )
    monkeypatch.delenv("FCSFT_TEST_CHECK_KEY", raising=False)
    result = fcsft("check", config)
    assert result.returncode == 0 and "ok (demo" in result.stdout
    assert result.stderr.strip() == (
        "warning: models.teacher: $FCSFT_TEST_CHECK_KEY is not set, so "
        "openai:m@http://127.0.0.1:9/v1 is called without a key (fine for a local server that "
        "needs none)"
    )
    monkeypatch.setenv("FCSFT_TEST_CHECK_KEY", "sk-test")
    result = fcsft("check", config)
    assert result.returncode == 0 and result.stderr == ""


def test_check_names_every_file_and_folder_the_config_reads_that_is_not_there(tmp_path):
    project = tmp_path.resolve() / "project"  # the lines name resolved paths
    (project / "docs").mkdir(parents=True)
    (project / "seeds.jsonl").write_text("")
    config = project / "project.yaml"
    config.write_text(
        "models:\n  teacher: {uri: mock:replies.yaml}\n  base: {uri: local:smollm2}\n"
        "seeds: {files: [seeds.jsonl, more.jsonl]}\n"
        "tools:\n  - {builtin: search, folder: docs}\n  - {builtin: fetch, root: site}\n"
        "curate: {general: [general.jsonl]}\ntrain: {base: local:models/base}\n"
        "evaluate: {model: local:../project/runs/not-yet/train/model}\nrun_dir: runs/not-yet\n"
    )
    result = fcsft("check", config)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"error: {config}: names what is not there",
        f"  models.teacher.uri: {project / 'replies.yaml'} does not exist",
        f"  seeds.files[1]: {project / 'more.jsonl'} does not exist",
        f"  tools[1].root: {project / 'site'} does not exist",
        f"  curate.general[0]: {project / 'general.jsonl'} does not exist",
        f"  train.base: {project / 'models' / 'base'} does not exist",
    ]
    result = fcsft("run", config)  # the same check, before any work
    assert result.returncode == 2 and f"error: {config}: names what is not there" in result.stderr
    assert not (project / "runs").exists()
    for name in ("replies.yaml", "more.jsonl", "general.jsonl"):
        (project / name).write_text("")
    for name in ("site", "models/base"):
        (project / name).mkdir(parents=True)
    assert fcsft("check", config).returncode == 0  # the run folder is the run's output


def test_config_schema_documents_every_field():
    result = fcsft("config", "--schema")
    schema = json.loads(result.stdout)
    model = schema["$defs"]["ModelConfig"]["properties"]
    assert all(field.get("description") for field in model.values())


def test_model_and_tokenizer_paths_are_relative_to_the_project_file(tmp_path, monkeypatch):
    from fcsft.config import load_config

    project = tmp_path / "project"
    project.mkdir()
    (project / "project.yaml").write_text(
        "models:\n"
        "  teacher: {uri: mock:replies.yaml}\n"
        "  judge: {uri: 'openai:deepseek-chat@https://api.deepseek.com'}\n"
        "export: {tokenizer: local:checkpoints/tok}\n"
        "train: {base: local:smollm2}\n"
        "evaluate: {base: local:/abs/model, model: local:~/tuned}\n"
    )
    monkeypatch.chdir(tmp_path)  # not the project's folder
    config = load_config("project/project.yaml")
    here = project.resolve()
    assert config.models["teacher"].uri == f"mock:{here / 'replies.yaml'}"
    assert config.models["judge"].uri == "openai:deepseek-chat@https://api.deepseek.com"
    assert config.export.tokenizer == f"local:{here / 'checkpoints' / 'tok'}"
    assert config.train.base == "local:smollm2"  # the embedded model's name, not a path
    assert config.evaluate.base == "local:/abs/model"
    assert config.evaluate.model == "local:~/tuned"  # absolute once the user's home is expanded


def test_a_misspelt_key_suggests_one_the_config_accepts(tmp_path):
    config = tmp_path / "project.yaml"
    config.write_text("valdate: {max_steps: 5}\nvalidate: {ruls: []}\n")
    result = fcsft("check", config)
    assert result.returncode == 2
    assert "valdate: unknown field; did you mean 'validate'?" in result.stderr
    assert "validate.ruls: unknown field; did you mean 'rules'?" in result.stderr
    config.write_text("validate: {max_steps: 5, rules: [logic.no_final_answer]}\n")
    assert fcsft("check", config).returncode == 0


def test_a_stage_run_too_early_names_the_stage_to_run_first(tmp_path):
    from fcsft.step import steps

    (tmp_path / "replies.yaml").write_text("- Hello.\n")
    config = tmp_path / "project.yaml"
    config.write_text("models:\n  teacher: {uri: 'mock:replies.yaml'}\n")
    result = fcsft("run", config, "--from", "generate", "--until", "generate")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    hint = re.search(r"\(fcsft run --until (\w+)\)$", line)
    assert hint and hint.group(1) == "tasks" and hint.group(1) in [s.name for s in steps()], line


def test_train_seed_and_stop_at_override_the_configs(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from typer.testing import CliRunner

    from fcsft import cli
    from fcsft.train import run

    seen = {}

    def train(settings, data, target, stop=None):
        seen["seed"], seen["stop_at"] = settings.seed, settings.stop_at
        summary = {"steps": 1, "loss_first": 1.0, "loss_last": 0.5, "eval_loss": None, "wall_s": 1}
        return summary, SimpleNamespace(rendered=[], val_ids=set())

    monkeypatch.setattr(run, "train", train)
    data = tmp_path / "train.jsonl"
    data.write_text("")
    args = ["train", "--data", str(data), "--out", str(tmp_path / "out")]
    assert CliRunner().invoke(cli.app, [*args, "--seed", "2", "--stop-at", "3"]).exit_code == 0
    assert seen == {"seed": 2, "stop_at": 3}
    assert CliRunner().invoke(cli.app, args).exit_code == 0
    assert seen == {"seed": 0, "stop_at": None}  # the config's own (TrainConfig's defaults)
    late = fcsft(*args, "--steps", "10", "--stop-at", "11")  # refused before any training
    assert late.returncode == 2
    assert late.stderr.strip() == (
        "error: fcsft train: Value error, stop_at 11 is past the schedule's last step 10"
    )


def test_train_writes_conversations_too_long_to_rejected_with_the_reason(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from fcsft.formats.chat_tokens import Example
    from fcsft.jsonl import read_jsonl
    from fcsft.runner.run import run_stage
    from fcsft.train import run
    from fcsft.train.step import TOO_LONG, train_stage

    long = {"messages": [{"role": "user", "content": "long"}], "meta": {"id": "long"}}
    rendered = [
        run.Rendered("fits", {"meta": {"id": "fits"}}, Example([1, 2, 3], [0, 1, 1])),
        run.Rendered("long", long, Example([1, 2, 3], [0, 0, 0])),  # cut before any answer
    ]
    prepared = SimpleNamespace(rendered=rendered, val_ids=set())
    monkeypatch.setattr(run, "train", lambda config, data, out, stop: ({"steps": 1}, prepared))
    data = tmp_path / "data.jsonl"
    data.write_text("")
    stats = run_stage(
        train_stage(run.TrainConfig(max_length=64), tmp_path / "train"), tmp_path, [data]
    )
    assert (stats["in"], stats["out"], stats["rejected"]) == (2, 1, 1)
    (rejected,) = read_jsonl(tmp_path / "train" / "rejected.jsonl")
    assert rejected["id"] == "long" and rejected["record"] == long
    assert rejected["reasons"][0]["rule"] == TOO_LONG
    assert "max_length=64" in rejected["reasons"][0]["reason"]
    assert (tmp_path / "train" / "_done.json").exists()


def test_a_word_that_changed_is_refused_with_the_setting_to_write(tmp_path):
    config = tmp_path / "project.yaml"
    config.write_text(
        "generate: {mode: native, concurrency: 8}\ntrain: {max_steps: 30}\n"
        "evaluate: {concurrency: 4, precision: bf16}\n"
    )
    result = fcsft("check", config)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()[1:]
    fixes = {
        "generate.mode": "renamed `protocol`",
        "generate.concurrency": "set `concurrency` on the teacher's entry in `models:`",
        "train.max_steps": "renamed `steps`",
        "evaluate.concurrency": "set `concurrency` there",
        "evaluate.precision": "set `precision` there",
    }
    assert len(lines) == len(fixes)
    for line, (field, fix) in zip(sorted(lines), sorted(fixes.items()), strict=True):
        assert line.strip().startswith(f"{field}: no longer a setting; ") and fix in line, line
    config.write_text("generate: {protocol: native}\ntrain: {steps: 30}\n")
    assert fcsft("check", config).returncode == 0


def test_validation_accepts_the_steps_the_teacher_was_allowed_unless_told(tmp_path):
    from fcsft.config import load_config

    config = tmp_path / "project.yaml"
    config.write_text("generate: {max_steps: 6}\n")
    assert load_config(config).validate_.settings().max_steps == 6
    config.write_text("generate: {max_steps: 6}\nvalidate: {max_steps: 4}\n")
    assert load_config(config).validate_.settings().max_steps == 4


def test_evaluate_names_a_role_whose_settings_both_sides_are_asked_with(tmp_path):
    from fcsft.config import load_config

    config = tmp_path / "project.yaml"
    config.write_text(
        "models:\n  small: {uri: 'openai:s@http://h/v1', concurrency: 3, precision: bf16,"
        " api_key_env: SMALL_KEY}\nevaluate: {base: small}\n"
    )
    project = load_config(config)
    sides = project.evaluate.sides(project.models, tmp_path / "tuned")
    assert (sides["base"].uri, sides["base"].concurrency) == ("openai:s@http://h/v1", 3)
    tuned = sides["tuned"]
    assert tuned.uri == f"local:{tmp_path / 'tuned'}"
    assert (tuned.concurrency, tuned.precision, tuned.api_key_env) == (3, "bf16", "SMALL_KEY")
    config.write_text("evaluate: {base: smal}\n")
    result = fcsft("check", config)
    assert result.returncode == 2
    assert "evaluate.base: 'smal' is neither a role of `models:`" in result.stderr
    # A URI of no known scheme is refused when the config is read, not when evaluate starts.
    config.write_text("evaluate: {base: 'foo:bar'}\n")
    result = fcsft("check", config)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "evaluate.base: 'foo:bar' is neither a role of `models:`" in line


def test_every_example_project_reads_with_todays_words():
    from fcsft.config import load_config

    examples = sorted((EXAMPLE.parents[1]).glob("*/project*.yaml"))
    assert len(examples) >= 3
    for path in examples:
        load_config(path)  # a retired word raises a UserError naming it
