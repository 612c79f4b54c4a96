"""Conventions every command shares: --version, -h, files given the same way, eval's options."""

from pathlib import Path

import fcsft as package
from clirun import fcsft

EXAMPLE = Path(__file__).parents[1] / "examples" / "trajectories" / "finance.openai.jsonl"


def test_version_and_short_help():
    result = fcsft("--version")
    assert (result.returncode, result.stdout.strip()) == (0, f"fcsft {package.__version__}")
    for command in ([], ["convert"], ["eval"], ["eval", "score"]):
        short, long = fcsft(*command, "-h"), fcsft(*command, "--help")
        assert short.returncode == long.returncode == 0
        assert short.stdout == long.stdout and "Usage:" in short.stdout


def test_validate_takes_its_files_as_convert_does(tmp_path):
    converted = tmp_path / "in.jsonl"
    assert fcsft("convert", EXAMPLE, converted).returncode == 0  # SOURCE TARGET
    by_position = fcsft("validate", converted, tmp_path / "a" / "checked")
    by_option = fcsft("validate", "--in", converted, "--out", tmp_path / "b" / "checked")
    assert by_position.returncode == by_option.returncode == 0, by_position.stderr
    for name in ("out.jsonl", "rejected.jsonl"):
        first = (tmp_path / "a" / "checked" / name).read_text()
        assert first == (tmp_path / "b" / "checked" / name).read_text()
    both = fcsft("validate", converted, tmp_path / "c", "--in", converted)
    assert (both.returncode, both.stderr.strip()) == (2, "error: give SOURCE or --in, not both")
    neither = fcsft("validate", "--out", tmp_path / "d")
    assert (neither.returncode, neither.stderr.strip()) == (2, "error: missing SOURCE (or --in)")


def test_eval_options_given_to_a_subcommand_are_named_not_ignored(tmp_path):
    result = fcsft(
        "eval", "--model", "local:smollm2", "score", "--predictions", "p", "--items", "i",
        "--out", tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: --model: options of `fcsft eval` itself, which `fcsft eval score` does not "
        "take; see fcsft eval score --help"
    )


def test_eval_refuses_counts_below_their_least_and_a_bias_that_is_no_number(tmp_path):
    wrong = {
        ("--mmlu", "-5"): "--mmlu -5: expected 0 or more",
        ("--bfcl-limit", "0"): "--bfcl-limit 0: expected 1 or more",
        ("--max-tokens", "0"): "--max-tokens 0: expected 1 or more",
        ("--concurrency", "0"): "--concurrency 0: expected 1 or more",
        ("--call-bias", "nan"): "--call-bias nan: expected a finite number",
        ("--call-bias", "-inf"): "--call-bias -inf: expected a finite number",
    }
    for (flag, value), message in wrong.items():
        out = tmp_path / flag.strip("-") / value
        result = fcsft(
            "eval", "--model", "local:smollm2", "--bfcl", "simple_python", flag, value,
            "--out", out,
        )  # fmt: skip
        assert (result.returncode, result.stderr.strip()) == (2, f"error: {message}")
        assert not out.exists()


def test_other_commands_refuse_numbers_outside_their_range(tmp_path):
    target = tmp_path / "out.jsonl"
    cases = {
        ("convert", EXAMPLE, target, "--show", "-1"): "--show -1: expected 0 or more",
        ("seeds", "mine", EXAMPLE, "--out", target, "--threshold", "1.5"): (
            "--threshold 1.5: expected from 0 to 1"
        ),
        ("testset", EXAMPLE, "--out", target, "--ood", "-3"): "--ood -3: expected 0 or more",
        ("review", tmp_path, "--port", "70000"): "--port 70000: expected from 0 to 65535",
    }
    for argv, message in cases.items():
        result = fcsft(*argv)
        assert (result.returncode, result.stderr.strip()) == (2, f"error: {message}"), argv
        assert not target.exists()


def test_check_warns_when_a_models_key_variable_is_unset(tmp_path):
    project = tmp_path / "project.yaml"
    project.write_text(
        "models:\n"
        "  teacher: {uri: 'openai:gpt-4o-mini', api_key_env: FCSFT_TEST_KEY}\n"
        "  student: {uri: 'local:smollm2'}\n"
    )
    unset = fcsft("check", project, env={"FCSFT_TEST_KEY": ""})
    assert unset.returncode == 0
    assert unset.stderr.strip() == (
        "warning: models.teacher: $FCSFT_TEST_KEY is not set, so openai:gpt-4o-mini is called "
        "without a key (fine for a local server that needs none)"
    )
    assert fcsft("check", project, env={"FCSFT_TEST_KEY": "sk-test"}).stderr == ""
