"""Stateful tools in generation: BFCL's file system as an `environment:` tools entry, a fresh
instance per trajectory loaded from the task's own file tree, the tree the calls left in
`meta.state`; and the example project built on it, run offline with its scripted teacher."""

import asyncio
import json
import shutil
from pathlib import Path

import pytest
import yaml

from clirun import fcsft
from fcsft.config import load_config
from fcsft.errors import UserError
from fcsft.formats import get_format
from fcsft.generate.stage import GenerateConfig, generate_stage
from fcsft.jsonl import read_jsonl, write_jsonl
from fcsft.models.base import ChatResponse
from fcsft.records import Task
from fcsft.runner.pipeline import Run, run_pipeline
from fcsft.runner.run import run_stage
from fcsft.tools import Toolbox, parse_entries
from fcsft.tools.environment import for_trajectory

pytest.importorskip("bfcl_eval")

EXAMPLE = Path(__file__).parents[1] / "examples" / "filesystem-multiturn"
FILE_SYSTEM = {"environment": {"classes": ["GorillaFileSystem"]}}


def tree(state: dict) -> dict:
    """A file system's state as `{name: content or subtree}` from its root's contents."""

    def walk(node: dict) -> dict:
        return {
            name: walk(item) if "contents" in item else item["content"]
            for name, item in node["contents"].items()
        }

    root = state["GorillaFileSystem"]["root"]
    return {root["name"]: walk(root)}


def example_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "examples" / EXAMPLE.name
    shutil.copytree(EXAMPLE, folder)
    return folder / "project.yaml"


def test_the_example_generates_conversations_each_on_its_own_file_system(tmp_path):
    project = example_copy(tmp_path)
    results = run_pipeline(Run(load_config(project), project.parent), "seeds", "curate")

    assert results["generate"]["out"] == 5 and results["validate"]["out"] == 5
    decontamination = results["curate"]["report"]["decontamination"]
    assert set(decontamination["sets"]) == {
        "bfcl:multi_turn_base",
        "bfcl:multi_turn_miss_func",
        "bfcl:multi_turn_miss_param",
        "bfcl:multi_turn_long_context",
    }
    assert all(size > 0 for size in decontamination["sets"].values())
    assert decontamination["removed"] == 0 and results["curate"]["out"] == 5

    run_dir = tmp_path / "runs" / "filesystem-multiturn"
    records = list(read_jsonl(run_dir / "validate" / "out.jsonl"))
    by_task = {r["meta"]["task_id"]: get_format("openai").parse(r) for r in records}
    seeds = {s["id"]: s for s in yaml.safe_load((EXAMPLE / "seeds.yaml").read_text())["seeds"]}
    assert set(by_task) == set(seeds)
    for ident, trajectory in by_task.items():
        assert trajectory.user_turns == [seeds[ident]["question"], *seeds[ident]["followups"]]
        assert not any(step.error for step in trajectory.steps if step.type == "observation")
    # The trees the seeds' requests leave, worked out by hand from the seeds.
    notes = "Revenue rose 12 percent in Q3."
    assert tree(by_task["fs-reports"].meta.state) == {
        "maya": {
            "projects": {"q3_notes.txt": notes, "reports": {"q3_notes.txt": notes}},
            "archive": {},
        }
    }
    assert tree(by_task["fs-logs"].meta.state) == {
        "ops": {"logs": {"app.log": "INFO start\nERROR disk full\nINFO retry\nERROR timeout"}}
    }
    assert tree(by_task["fs-draft"].meta.state) == {
        "lee": {
            "final.txt": "The launch moves to Monday.",
            "draft_old.txt": "The launch moves to Friday.",
        }
    }
    assert tree(by_task["fs-garden"].meta.state) == {
        "kim": {"garden": {"plan.txt": "tomatoes basil mint"}}
    }
    # Nothing changes a file in fs-todo: sorting and searching only read it.
    assert tree(by_task["fs-todo"].meta.state) == {
        "sam": {"todo.txt": "water plants\nfix bike\ncall the bike shop"}
    }


class MakesReports:
    """Creates the folder `reports` and answers with what `ls` then shows, each reply after
    the last one's result: a second `mkdir reports` on a shared file system would fail.
    Four requests in flight, so generate runs four trajectories at once."""

    concurrency = 4

    async def chat(self, request):
        results = [m["content"] for m in request.messages if m["role"] == "tool"]
        if len(results) < 2:
            name, arguments = [("mkdir", {"dir_name": "reports"}), ("ls", {})][len(results)]
            call = {
                "id": f"call_{len(results)}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)},
            }
            return ChatResponse(message={"content": None, "tool_calls": [call]})
        return ChatResponse(message={"content": f"The folder now lists {results[-1]}."})


def test_every_trajectory_starts_from_its_own_task_s_state_and_no_other(tmp_path):
    tools = asyncio.run(Toolbox.open([FILE_SYSTEM]))
    tasks = [
        Task(
            id=f"t{k}",
            family=f"t{k}",
            question="Make a reports folder.",
            environment={
                "GorillaFileSystem": {
                    "root": {
                        f"home{k}": {
                            "type": "directory",
                            "contents": {f"a{k}.txt": {"type": "file", "content": ""}},
                        }
                    }
                }
            },
        )
        for k in range(3)
    ]
    tasks.append(Task(id="t3", family="t3", question="Make a reports folder."))
    write_jsonl(tmp_path / "tasks.jsonl", (t.to_json() for t in tasks))
    config = GenerateConfig(protocol="native", reference="off", samples=3)
    stage = generate_stage(config, MakesReports(), "scripted", tools)
    stats = run_stage(stage, tmp_path / "run", [tmp_path / "tasks.jsonl"])

    assert stats["out"] == 12
    for record in read_jsonl(tmp_path / "run/generate/out.jsonl"):
        trajectory = get_format("openai").parse(record)
        k = trajectory.meta.task_id[1:]
        mkdir, ls = [s for s in trajectory.steps if s.type == "observation"]
        assert not mkdir.error, mkdir.content
        if k == "3":  # no tree of its own: the entry's default, BFCL's empty root
            assert ls.content == '{"current_directory_content": ["reports"]}'
            assert tree(trajectory.meta.state) == {"/": {"reports": {}}}
        else:
            assert ls.content == f'{{"current_directory_content": ["a{k}.txt", "reports"]}}'
            assert tree(trajectory.meta.state) == {f"home{k}": {f"a{k}.txt": "", "reports": {}}}


def test_the_toolbox_lists_bfcl_s_descriptions_and_runs_nothing_itself():
    tools = asyncio.run(Toolbox.open([{**FILE_SYSTEM, "include": ["cd", "mkdir"]}]))
    assert list(tools) == ["cd", "mkdir"]
    docs = Path(__import__("bfcl_eval").__file__).parent / "data/multi_turn_func_doc"
    [cd_doc] = [d for d in read_jsonl(docs / "gorilla_file_system.json") if d["name"] == "cd"]
    assert tools["cd"].spec.description.startswith(cd_doc["description"])
    assert tools["cd"].spec.parameters["required"] == ["folder"]
    result = asyncio.run(tools["mkdir"].run({"dir_name": "x"}))
    assert result.error and "runs only on a trajectory's own instance" in result.content


@pytest.mark.parametrize(
    "entry, message",
    [
        (
            {"environment": {"classes": ["GorillaFS"]}},
            "tools.0.environment.environment.classes: Value error, unknown classes ['GorillaFS']; known: ",
        ),
        (
            {"environment": {"classes": ["MathAPI"], "initial_config": {"TradingBot": {}}}},
            "initial_config names ['TradingBot'], which are not among the classes",
        ),
    ],
)
def test_a_bad_environment_entry_is_reported_at_its_position(entry, message):
    with pytest.raises(UserError, match=r"invalid tools config") as caught:
        parse_entries([entry])
    assert message in str(caught.value)


def test_a_task_configuring_a_class_no_tool_holds_stops_the_run_with_one_line(tmp_path):
    project = example_copy(tmp_path)
    seeds = project.parent / "seeds.yaml"
    seeds.write_text(
        seeds.read_text().replace("      GorillaFileSystem:\n", "      GorillaFS:\n", 1)
    )
    done = fcsft("run", project, "--until", "generate", timeout=120)
    assert done.returncode == 2, done.stderr
    # Progress of the stages before goes to stderr too; the error is one line, no traceback.
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "error: task fs-reports: environment configures ['GorillaFS'], but its tools hold "
        "GorillaFileSystem; fix the class names or the tools"
    )


def test_a_malformed_file_tree_is_a_user_error_naming_the_task():
    tools = asyncio.run(Toolbox.open([FILE_SYSTEM]))
    no_content = {"root": {"a": {"type": "directory", "contents": {"f": {"type": "file"}}}}}
    with pytest.raises(UserError, match=r"^task t9: its environment cannot be loaded \(KeyError"):
        for_trajectory(tools, {"GorillaFileSystem": no_content}, "task t9")
