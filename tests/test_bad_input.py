"""Every command that reads or writes a file a user names, fed every kind of bad input.

The contract (STYLE.md 7, and the run-directory promise): a user's mistake is one line without
a traceback and exit 2; a line that cannot be read is set aside with its number while the good
lines still come through (exit 1 where the command reports set-aside lines, 0 in `fcsft run`,
whose seeds stage records them); an input none of whose lines can be used is a mistake too (exit 2, or 1 where a stage
folder records the set-aside lines); a byte order mark or CRLF line ends are valid input and
parse exactly as the plain file does; and no file the user already had is changed by a command that
fails, nor any other than the one it was asked to write by one that succeeds.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from clirun import fcsft_here

EXAMPLE = Path(__file__).parents[1] / "examples" / "trajectories" / "finance.openai.jsonl"
BOM = b"\xef\xbb\xbf"
PRECIOUS = b"the user's own file\n"


def _lines(*objs) -> list[bytes]:
    return [json.dumps(obj).encode() + b"\n" for obj in objs]


TRAJECTORIES = EXAMPLE.read_bytes().splitlines(keepends=True)
CURATED = _lines(
    *(
        json.loads(line) | {"meta": json.loads(line)["meta"] | {"split": "test"}}
        for line in TRAJECTORIES
    )
)
SEEDS = _lines(
    {"id": "s1", "question": "What was ACME's revenue in 2023?", "domain": "finance"},
    {"id": "s2", "question": "Convert 100 USD to EUR at today's rate.", "tags": ["multi_hop"]},
)
LOGS = _lines(
    {"messages": [{"role": "user", "content": "What was ACME's revenue in 2023?"}]},
    {"messages": [{"role": "user", "content": "Which filing mentions the Orrin merger?"}]},
)
SEARCH = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search documents.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
    },
}
ITEMS = _lines(
    {"id": "q1", "layer": "adversarial", "kind": "chit_chat", "question": "Hi!", "gold": []},
    {
        "id": "q2",
        "layer": "standard",
        "kind": "held_out_family",
        "question": "Revenue of ACME in 2023?",
        "tools": [SEARCH],
        "gold": [[{"name": "search", "arguments": {"query": "ACME revenue 2023"}}]],
    },
)
PREDICTIONS = _lines(
    {"id": "q1", "turns": [], "parse_error": None, "model_error": None},
    {
        "id": "q2",
        "turns": [[{"name": "search", "arguments": {"query": "ACME revenue 2023"}}]],
        "parse_error": None,
        "model_error": None,
    },
)
CONFIG = [b"name: demo\n", b"models:\n", b"  teacher: {uri: 'mock:replies.yaml', concurrency: 4}\n"]

CLASSES = (
    "missing",
    "directory",
    "empty",
    "bom",
    "crlf",
    "bad_utf8",
    "truncated",
    "wrong_shape",
    "all_bad",
    "target_is_source",
)
SET_ASIDE = ("bad_utf8", "truncated", "wrong_shape")  # one bad line among good ones


def bad_file(case: str, good: list[bytes], kind: str) -> tuple[bytes, int]:
    """The bytes of a `case` input made from good lines, and the number of its bad line."""
    if case == "empty":
        return b"", 0
    if case == "bom":
        return BOM + b"".join(good), 0
    if case == "crlf":
        return b"".join(line.replace(b"\n", b"\r\n") for line in good), 0
    if case == "bad_utf8":
        bad = b"# caf\xe9\n" if kind == "yaml" else b'{"question": "caf\xe9 au lait?"}\n'
        return good[0] + bad + b"".join(good[1:]), 2
    if case == "truncated":
        return b"".join(good) + good[-1][: len(good[-1]) // 2], len(good) + 1
    if case == "all_bad":  # not one line the command can use
        return (b"- [1, 2]\n" if kind == "yaml" else b'{"hello": "world"}\n'), 1
    if case == "wrong_shape":
        if kind == "yaml":
            return b"- name\n- demo\n", 1
        return good[0] + b'{"hello": "world"}\n' + b"".join(good[1:]), 2
    raise AssertionError(case)


@dataclass(frozen=True)
class Command:
    """One command: how it is called on an input, what it answers to each class of input, and
    `view`, what it made of the good lines (equal for an input that only adds bad ones)."""

    name: str
    good: list[bytes]
    argv: Callable[[Path, Path, Path], list]  # (input, user's folder, output folder)
    expect: dict[str, int]  # class -> exit code; a class left out does not apply
    view: Callable[[Path, Path, str], bytes]  # (user's folder, output folder, stdout)
    input_name: str = "input.jsonl"
    kind: str = "jsonl"
    target: str | None = None  # a file in the user's folder the command is asked to write
    same: Callable[[Path, Path, Path], list] | None = None  # argv writing over the input
    setup: Callable[[Path, Path], None] = lambda user, out: None
    chatter: str | None = None  # stderr lines that are progress, not errors


def expect(empty=0, set_aside=1, same=2, plain=0, all_bad=2) -> dict[str, int]:
    table = {"missing": 2, "directory": 2, "empty": empty, "bom": plain, "crlf": plain}
    table["all_bad"] = all_bad
    table |= dict.fromkeys(SET_ASIDE, set_aside)
    if same is not None:
        table["target_is_source"] = same
    return table


def _read(path: Path) -> bytes:
    return path.read_bytes()


def _project(user: Path, out: Path) -> None:
    (user / "project.yaml").write_text(
        f"name: demo\nrun_dir: {out / 'run'}\nseeds: {{files: [input.jsonl]}}\n"
    )


def _replies(user: Path, out: Path) -> None:
    (user / "replies.yaml").write_text("- Hello, how can I help?\n" * 10)
    (user / "items.jsonl").write_bytes(b"".join(ITEMS))


def _stop_before_training(monkeypatch) -> None:
    """`fcsft train` is followed until the model would be loaded: what it would train on is
    kept in the working folder, and the command ends there."""
    import typer

    from fcsft.jsonl import read_jsonl

    def prepare(config, data):
        (Path.cwd() / "would_train.json").write_text(json.dumps(list(read_jsonl(data))))
        raise typer.Exit(0)

    monkeypatch.setattr("fcsft.train.run.prepare", prepare)


COMMANDS = [
    Command(
        "convert",
        TRAJECTORIES,
        lambda i, u, o: ["convert", i, u / "converted.jsonl", "--to", "sharegpt"],
        expect(),
        lambda u, o, stdout: _read(u / "converted.jsonl"),
        target="converted.jsonl",
        same=lambda i, u, o: ["convert", i, i],
    ),
    Command(
        "validate",
        TRAJECTORIES,
        lambda i, u, o: ["validate", "--in", i, "--out", o / "checked"],
        expect(all_bad=1),  # its own folder records the set-aside line
        lambda u, o, stdout: _read(o / "checked" / "out.jsonl"),
        same=lambda i, u, o: ["validate", "--in", i, "--out", i],
    ),
    Command(
        "seeds import",
        SEEDS,
        lambda i, u, o: ["seeds", "import", i, "--out", u / "seeds.out.jsonl"],
        expect(),
        lambda u, o, stdout: _read(u / "seeds.out.jsonl"),
        target="seeds.out.jsonl",
        same=lambda i, u, o: ["seeds", "import", i, "--out", i],
    ),
    Command(
        "seeds mine",
        LOGS,
        lambda i, u, o: ["seeds", "mine", i, "--out", u / "mined.jsonl"],
        expect(),
        lambda u, o, stdout: _read(u / "mined.jsonl"),
        target="mined.jsonl",
        same=lambda i, u, o: ["seeds", "mine", i, "--out", i],
    ),
    Command(
        "seeds stats",
        SEEDS,
        lambda i, u, o: ["seeds", "stats", i, "--json"],
        expect(set_aside=2, same=None),
        lambda u, o, stdout: stdout.encode(),
    ),
    Command(
        "check",
        CONFIG,
        lambda i, u, o: ["check", i],
        expect(set_aside=2, same=None),
        lambda u, o, stdout: stdout.encode(),
        input_name="project.yaml",
        kind="yaml",
        setup=_replies,  # the mock model's file the config names
    ),
    Command(
        "run (seed file)",
        SEEDS,
        lambda i, u, o: ["run", u / "project.yaml", "--until", "seeds"],
        expect(empty=2, set_aside=0, same=None),
        lambda u, o, stdout: _read(o / "run" / "seeds" / "out.jsonl"),
        setup=_project,
        chatter=r"^seeds: \d+ in, \d+ out, \d+ rejected( \(seeds\.malformed \d+\))?$",
    ),
    Command(
        "testset",
        CURATED,
        lambda i, u, o: ["testset", i, "--out", u / "items.out.jsonl"],
        expect(set_aside=2),
        lambda u, o, stdout: _read(u / "items.out.jsonl"),
        target="items.out.jsonl",
        same=lambda i, u, o: ["testset", i, "--out", i],
    ),
    Command(
        "eval score",
        PREDICTIONS,
        lambda i, u, o: [
            *("eval", "score", "--predictions", i),
            *("--items", u / "items.jsonl", "--out", o / "scored"),
        ],
        expect(set_aside=2),
        lambda u, o, stdout: _read(o / "scored" / "scores.jsonl"),
        same=lambda i, u, o: ["eval", "score", "--predictions", i, "--items", i, "--out", i],
        setup=lambda u, o: (u / "items.jsonl").write_bytes(b"".join(ITEMS)),
    ),
    Command(
        "eval (items)",
        ITEMS,
        lambda i, u, o: [
            *("eval", "--model", f"mock:{u / 'replies.yaml'}"),
            *("--items", i, "--out", o / "eval"),
        ],
        expect(empty=2, set_aside=2),
        lambda u, o, stdout: _read(o / "eval" / "scores.jsonl"),
        same=lambda i, u, o: (
            ["eval", "--model", f"mock:{u / 'replies.yaml'}", "--items", i, "--out", i]
        ),
        setup=_replies,
    ),
    Command(
        "train --data",
        TRAJECTORIES,
        lambda i, u, o: ["train", "--data", i, "--out", o / "trained"],
        expect(empty=2, set_aside=2),
        lambda u, o, stdout: _read(Path.cwd() / "would_train.json"),
        same=lambda i, u, o: ["train", "--data", i, "--out", i],
    ),
]
CASES = [
    pytest.param(command, case, id=f"{command.name}-{case}")
    for command in COMMANDS
    for case in CLASSES
    if case in command.expect
]


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def call(command: Command, root: Path, case: str, capsys) -> tuple:
    """Lay out a user's folder for `case` under `root`, run the command; (result, input,
    bad line number, the user's folder before, after)."""
    user, out = root / "user", root / "out"
    user.mkdir(parents=True)
    out.mkdir()
    command.setup(user, out)
    source = user / command.input_name
    bad_line = 0
    if case == "directory":
        source.mkdir()
        (source / "keep.txt").write_bytes(PRECIOUS)
    elif case == "missing":
        pass
    elif case in ("good", "target_is_source"):
        source.write_bytes(b"".join(command.good))
    else:
        data, bad_line = bad_file(case, command.good, command.kind)
        source.write_bytes(data)
    if command.target:
        (user / command.target).write_bytes(PRECIOUS)
    before = snapshot(user)
    argv = (command.same if case == "target_is_source" else command.argv)(source, user, out)
    result = fcsft_here(*argv, capsys=capsys)
    return result, source, bad_line, before, snapshot(user)


def error_lines(command: Command, stderr: str) -> list[str]:
    lines = [line for line in stderr.splitlines() if line.strip()]
    if command.chatter:
        lines = [line for line in lines if not re.match(command.chatter, line)]
    return lines


@pytest.mark.parametrize(("command", "case"), CASES)
def test_bad_input(command, case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _stop_before_training(monkeypatch)
    result, source, bad_line, before, after = call(command, tmp_path / "case", case, capsys)
    code = command.expect[case]
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, (result.stdout, result.stderr)
    assert not [name for name in after if ".tmp" in name], after
    errors = error_lines(command, result.stderr)
    if code == 2:
        assert len(errors) == 1 and errors[0].startswith("error: "), result.stderr
        assert source.name in errors[0], errors[0]
        assert after == before, "a failed command changed the user's files"
        return
    assert len(errors) <= 1, result.stderr
    kept = {name: digest for name, digest in before.items() if name != command.target}
    assert {name: after.get(name) for name in kept} == kept
    if case in ("empty", "all_bad"):
        return
    if case in SET_ASIDE:
        assert [line for line in errors if f"{source}:{bad_line}:" in line], result.stderr
    good, _, _, _, _ = call(command, tmp_path / "good", "good", capsys)
    assert good.returncode == 0, good.stderr
    this, reference = tmp_path / "case", tmp_path / "good"
    made = command.view(this / "user", this / "out", result.stdout)
    wanted = command.view(reference / "user", reference / "out", good.stdout)
    made, wanted = (
        made.replace(str(this).encode(), b"ROOT"),
        wanted.replace(str(reference).encode(), b"ROOT"),
    )
    assert made == wanted
    assert made.strip(), "the good lines made nothing"


def test_convert_refuses_to_write_its_rejected_lines_over_its_input(tmp_path, capsys):
    source = tmp_path / "x.rejected.jsonl"
    source.write_bytes(EXAMPLE.read_bytes())
    result = fcsft_here("convert", source, tmp_path / "x.jsonl", capsys=capsys)
    assert result.returncode == 2
    assert "its rejected lines would go to" in result.stderr
    assert source.read_bytes() == EXAMPLE.read_bytes()
    assert not (tmp_path / "x.jsonl").exists()


def test_convert_refuses_the_input_under_another_name(tmp_path, capsys):
    source = tmp_path / "a.jsonl"
    source.write_bytes(EXAMPLE.read_bytes())
    (tmp_path / "link.jsonl").symlink_to(source)
    (tmp_path / "hard.jsonl").hardlink_to(source)
    for other in ("link.jsonl", "hard.jsonl", "./sub/../a.jsonl"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        result = fcsft_here("convert", source, tmp_path / other, capsys=capsys)
        assert result.returncode == 2 and "is the input" in result.stderr, other
    assert source.read_bytes() == EXAMPLE.read_bytes()


def test_a_lone_surrogate_escape_converts_and_keeps_its_escape(tmp_path, capsys):
    record = json.loads(TRAJECTORIES[0])
    record["messages"][1]["content"] = "broken \\ud800 pair"
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(record).replace("\\\\ud800", "\\ud800") + "\n")
    result = fcsft_here("convert", source, tmp_path / "out.jsonl", capsys=capsys)
    assert result.returncode == 0, result.stderr
    (line,) = (tmp_path / "out.jsonl").read_text().splitlines()
    assert json.loads(line)["messages"][1]["content"] == "broken \ud800 pair"


def test_validate_will_not_write_where_its_input_or_other_files_live(tmp_path, capsys):
    stage = tmp_path / "mine"
    stage.mkdir()
    (stage / "out.jsonl").write_bytes(EXAMPLE.read_bytes())
    result = fcsft_here("validate", "--in", stage, "--out", stage, capsys=capsys)
    assert result.returncode == 2 and "holds the input" in result.stderr
    (stage / "notes.txt").write_text("mine")
    result = fcsft_here(
        "validate",
        "--in",
        EXAMPLE,
        "--out",
        stage,
        "--rules",
        "logic.no_final_answer",
        capsys=capsys,
    )
    assert result.returncode == 2 and "no earlier `fcsft validate` wrote" in result.stderr
    assert (stage / "out.jsonl").read_bytes() == EXAMPLE.read_bytes()
    assert (stage / "notes.txt").read_text() == "mine"
    # Its own earlier output is its to replace.
    checked = tmp_path / "checked"
    for rules in ("logic.no_final_answer", "logic.too_many_steps"):
        result = fcsft_here(
            "validate", "--in", EXAMPLE, "--out", checked, "--rules", rules, capsys=capsys
        )
        assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["memory", "add", "topic", "a lesson", "--dir", "{file}"],
        ["memory", "show", "--dir", "{file}"],
        ["memory", "lessons", "{folder}", "--dir", "{folder}/memory"],
        ["memory", "lessons", "{file}", "--dir", "{folder}/memory"],
        ["eval", "compare", "{folder}", "{folder}", "--out", "{file}"],
        ["validate", "--in", "{folder}", "--out", "{folder}/checked"],
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_a_folder_argument_that_is_not_one_is_named_in_one_line(argv, tmp_path, capsys):
    user = tmp_path / "user"
    (user / "folder" / "predictions").mkdir(parents=True)  # passes for an eval folder
    (user / "folder" / "predictions" / "out.jsonl").write_bytes(b"")
    (user / "file.jsonl").write_bytes(PRECIOUS)
    before = snapshot(user)
    names = {"file": user / "file.jsonl", "folder": user / "folder"}
    result = fcsft_here(*(part.format(**names) for part in argv), capsys=capsys)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and str(user) in line
    assert snapshot(user) == before
