"""The `fcsft` command. User errors print one line and exit 2; bugs keep their traceback."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console
from typer.core import TyperGroup

from fcsft.errors import UserError


class _WithSteps(TyperGroup):
    """The commands below, and `fcsft STEP project.yaml` for every registered step that has no
    command of its own (one with options of its own, or run by a person). The registry is read
    only when such a command or the list is asked for, so other commands start without
    importing every step."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        own = super().list_commands(ctx)
        return own + [entry.name for entry in _plain_steps(own)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        found = super().get_command(ctx, name)
        if found is not None:
            return found
        entry = next((e for e in _plain_steps(super().list_commands(ctx)) if e.name == name), None)
        return _step_command(entry) if entry is not None else None


def _plain_steps(taken: list[str]) -> list:
    from fcsft.step import steps

    return [entry for entry in steps() if entry.manual is None and entry.name not in taken]


def _step_command(entry) -> click.Command:
    """`fcsft NAME project.yaml`: the step alone, as `fcsft run --from NAME --until NAME`."""
    import inspect

    about = inspect.getdoc(entry.build) or inspect.getdoc(sys.modules[entry.build.__module__])
    summary = (about or f"The {entry.name} step.").split("\n\n")[0].replace("\n", " ")

    def command(config: Annotated[Path, typer.Argument(help="project.yaml")]) -> None:
        run_command(config, start=entry.name, until=entry.name)

    command.__doc__ = f"{summary} Same as: fcsft run --from {entry.name} --until {entry.name}"
    single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    single.command(entry.name)(command)
    return typer.main.get_command(single)


app = typer.Typer(
    cls=_WithSteps,
    help="Function-calling SFT by data engineering: build, check, train and prove.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        from fcsft import __version__

        out.print(f"fcsft {__version__}", markup=False)
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Function-calling SFT by data engineering: build, check, train and prove."""
    _show_progress_lines()


def _show_progress_lines() -> None:
    """fcsft's own INFO lines (the trainer's step, rate and time left) go to stderr as they
    are; other libraries' logging is left as they set it."""
    import logging

    logger = logging.getLogger("fcsft")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


@app.command()
def convert(
    source: Annotated[Path, typer.Argument(help="Input JSONL file.")],
    target: Annotated[Path, typer.Argument(help="Output JSONL file.")],
    from_format: Annotated[str, typer.Option("--from", help="Input format.")] = "openai",
    to_format: Annotated[str, typer.Option("--to", help="Output format.")] = "openai",
    show: Annotated[int, typer.Option(help="How many rejected lines to print.")] = 10,
) -> None:
    """Convert trajectories between formats (tagged, openai, sharegpt).

    Lines that fail go to TARGET.rejected.jsonl with their reasons; the exit code is 1 then.
    When no line converts, neither file is written and the exit code is 2.
    """
    from fcsft.convert import convert_file

    _bounded("--show", show, 0)
    result = convert_file(source, target, from_format, to_format)
    for problem in result.problems[:show]:
        err.print(problem, markup=False)
    if len(result.problems) > show:
        err.print(f"... and {len(result.problems) - show} more in {result.rejected_path}")
    out.print(
        f"{result.written} converted to {target}, {result.rejected} rejected"
        + (f" (see {result.rejected_path})" if result.rejected else ""),
        markup=False,
    )
    if result.rejected:
        raise typer.Exit(1)


@app.command()
def check(config: Annotated[Path, typer.Argument(help="project.yaml")]) -> None:
    """Validate a project config; every error is listed with its field path, and so is every
    file or folder it names that is not there."""
    from fcsft.config import load_config, require_inputs, unset_keys

    project = load_config(config)
    require_inputs(project, config)
    for line in unset_keys(project):
        err.print(f"warning: {line}", markup=False)
    out.print(f"{config}: ok ({project.name}, run dir {project.run_dir})", markup=False)


@app.command("config")
def config_schema(
    schema: Annotated[bool, typer.Option("--schema", help="Print the JSON schema.")] = False,
) -> None:
    """Show the project config's JSON schema, with a description for every field."""
    from fcsft.config import ProjectConfig

    if not schema:
        raise UserError("nothing to do: run `fcsft config --schema`")
    out.print_json(json.dumps(ProjectConfig.model_json_schema()))


seeds_app = typer.Typer(help="Import, mine and inspect seed questions.", no_args_is_help=True)
app.add_typer(seeds_app, name="seeds")


def _report_import(result, out_path: Path, show: int = 10) -> None:
    from fcsft.errors import nothing_usable
    from fcsft.jsonl import write_jsonl

    if result.problems and not result.seeds:
        raise UserError(nothing_usable(result.problems, out_path))
    for problem in result.problems[:show]:
        err.print(problem, markup=False)
    if len(result.problems) > show:
        err.print(f"... and {len(result.problems) - show} more problems", markup=False)
    written = write_jsonl(out_path, (seed.to_json() for seed in result.seeds))
    scrubbed = ", ".join(f"{n} {kind}" for kind, n in result.scrubbed.most_common()) or "none"
    out.print(
        f"{written} seeds written to {out_path}; {len(result.problems)} rows rejected; "
        f"{result.duplicates} near-duplicates dropped; scrubbed: {scrubbed}",
        markup=False,
    )
    if result.problems:
        raise typer.Exit(1)


@seeds_app.command("import")
def seeds_import(
    files: Annotated[list[Path], typer.Argument(help="JSONL, CSV or YAML seed files.")],
    out_path: Annotated[Path, typer.Option("--out", help="Seeds JSONL to write.")],
    source: Annotated[
        str, typer.Option(help="Source for rows that do not say: log, expert, import.")
    ] = "import",
    domain: Annotated[str, typer.Option(help="Domain for rows that do not say.")] = "",
) -> None:
    """Import seeds; a bad row is reported with file and line, the rest still imports (when
    none can, --out is left as it was)."""
    from fcsft.files import check_target
    from fcsft.seeds.importers import import_seeds

    check_target(out_path, *files, option="--out")
    _report_import(import_seeds(files, source, domain), out_path)


@seeds_app.command("mine")
def seeds_mine(
    logs: Annotated[list[Path], typer.Argument(help="Chat logs: JSONL of {'messages': [...]}.")],
    out_path: Annotated[Path, typer.Option("--out", help="Seeds JSONL to write.")],
    domain: Annotated[str, typer.Option(help="Domain to tag the questions with.")] = "",
    threshold: Annotated[
        float, typer.Option(help="Jaccard similarity that counts as duplicate.")
    ] = 0.8,
    pii: Annotated[
        str,
        typer.Option(help="PII detector: patterns, or presidio (pip install 'fcsft[pii]')."),
    ] = "patterns",
) -> None:
    """Mine user questions from chat logs: PII scrubbed, near-duplicates dropped, source=log."""
    from fcsft.files import check_target
    from fcsft.seeds.importers import mine_logs

    _bounded("--threshold", threshold, 0, 1)
    check_target(out_path, *logs, option="--out")
    _report_import(mine_logs(logs, domain, threshold, pii=pii), out_path)


@seeds_app.command("stats")
def seeds_stats(
    file: Annotated[Path, typer.Argument(help="Seeds JSONL.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Counts by source, domain, tool, plan length and the no-tool share, with warnings."""
    from rich.table import Table

    from fcsft.seeds.importers import read_seeds
    from fcsft.seeds.stats import seed_stats

    stats = seed_stats(read_seeds(file))
    if as_json:
        out.print_json(json.dumps(stats))
        return
    out.print(f"{stats['seeds']} seeds, {stats['no_tool_share']:.0%} should-not-call")
    for key in ("by_source", "by_domain", "by_tool", "plan_length"):
        table = Table(key.replace("_", " "), "count")
        for name, count in stats[key].items():
            table.add_row(str(name), str(count))
        out.print(table)
    for warning in stats["warnings"]:
        err.print(f"warning: {warning}", markup=False)


@app.command()
def validate(
    source_arg: Annotated[
        Path | None,
        typer.Argument(
            metavar="SOURCE", help="openai JSONL, or a stage dir (its out.jsonl); or use --in."
        ),
    ] = None,
    target_arg: Annotated[
        Path | None,
        typer.Argument(metavar="TARGET", help="Directory for out/rejected/stats; or use --out."),
    ] = None,
    source_opt: Annotated[
        Path | None, typer.Option("--in", help="The same as SOURCE.", show_default=False)
    ] = None,
    target_opt: Annotated[
        Path | None, typer.Option("--out", help="The same as TARGET.", show_default=False)
    ] = None,
    rules: Annotated[
        str, typer.Option(help="Comma-separated reason codes to run (default all).")
    ] = "",
    max_steps: Annotated[
        int | None,
        typer.Option(help="Most assistant steps allowed; default: generate.max_steps' default."),
    ] = None,
    min_steps: Annotated[int, typer.Option(help="Fewest assistant steps for a tool task.")] = 2,
) -> None:
    """Format and logic rules over trajectories; every rejection keeps all its reasons.

    Files are given as `convert` takes them, SOURCE then TARGET, or as --in and --out. A line
    that is no trajectory record is set aside (rejected as input.malformed, named by line);
    the exit code is 1 then.
    """
    from fcsft.files import check_output_dir, open_input
    from fcsft.runner.run import run_stage
    from fcsft.validate.stage import ValidateConfig, validate_stage

    source = _one_of(source_arg, source_opt, "SOURCE", "--in")
    target = _one_of(target_arg, target_opt, "TARGET", "--out")
    if source.is_dir():
        source = source / "out.jsonl"
    open_input(source).close()
    target = _stage_folder(check_output_dir(target, source).resolve(), "fcsft validate")
    options = {"max_steps": max_steps, "min_steps": min_steps}  # max_steps None: the default
    if rules:
        options["rules"] = [code.strip() for code in rules.split(",") if code.strip()]
    config = _config(ValidateConfig, options, "validate")
    stats = run_stage(validate_stage(config, target.name), target.parent, [source])
    share = stats["rejected"] / stats["in"] if stats["in"] else 0.0
    out.print(
        f"{stats['in']} checked: {stats['out']} kept, {stats['rejected']} rejected "
        f"({share:.1%}) in {stats['wall_s']:.1f}s -> {target}",
        markup=False,
    )
    for code, count in stats["reasons"].items():
        out.print(f"  {code:28} {count}", markup=False)
    if stats["reasons"].get("input.malformed"):
        _print_set_aside(target / "rejected.jsonl")
        raise typer.Exit(1)


def _stage_folder(target: Path, command: str) -> Path:
    """`target` as a stage's folder: a stage owns its folder (a later run with other input or
    settings starts it afresh), so one holding files the stage did not write is refused."""
    if target.is_dir() and any(target.iterdir()) and not (target / "_state.json").exists():
        raise UserError(
            f"--out {target}: holds files that no earlier `{command}` wrote; "
            "name a new or empty folder"
        )
    return target


def _print_set_aside(rejected: Path, show: int = 10) -> None:
    """The input lines a stage set aside, one line each (as `fcsft convert` prints them)."""
    from fcsft.jsonl import read_jsonl

    problems = [
        verdict["reason"]
        for row in read_jsonl(rejected)
        for verdict in row["reasons"]
        if verdict["rule"] == "input.malformed"
    ]
    for problem in problems[:show]:
        err.print(problem, markup=False)
    if len(problems) > show:
        err.print(f"... and {len(problems) - show} more in {rejected}", markup=False)


def _one_of(argument: Path | None, option: Path | None, name: str, flag: str) -> Path:
    if argument is not None and option is not None:
        raise UserError(f"give {name} or {flag}, not both")
    if argument is None and option is None:
        raise UserError(f"missing {name} (or {flag})")
    return argument if argument is not None else option  # type: ignore[return-value]


def _bounded(flag: str, value: float | None, least: float, most: float | None = None) -> None:
    """A UserError when a numeric option (None: not given) lies outside [least, most]."""
    if value is None:
        return
    if not math.isfinite(value) or value < least or (most is not None and value > most):
        span = f"{least} or more" if most is None else f"from {least} to {most}"
        raise UserError(f"{flag} {value}: expected {span}")


def _config(model, options: dict, where: str):
    """A config section from CLI options, with the same one-line errors as project.yaml."""
    from pydantic import ValidationError

    from fcsft.errors import validation_problems

    try:
        return model(**options)
    except ValidationError as exc:
        raise UserError(f"{where}: " + "; ".join(validation_problems(exc))) from None


memory_app = typer.Typer(
    help="Inspect and edit memories (MEMORY.md and topic files).", no_args_is_help=True
)
app.add_typer(memory_app, name="memory")
MemoryDir = Annotated[Path, typer.Option("--dir", help="Memory folder.")]


def _memory(root: Path):
    from fcsft.files import check_output_dir
    from fcsft.memory import MemoryWriter

    return MemoryWriter(check_output_dir(root, option="--dir"))


@memory_app.command("show")
def memory_show(
    topic: Annotated[str, typer.Argument(help="Topic (all when omitted).")] = "",
    root: MemoryDir = Path("memory"),
) -> None:
    """Print memories, by topic."""
    writer = _memory(root)
    for name in [topic] if topic else writer.topics():
        out.print(f"# {name}", markup=False)
        for memory in writer.read(name):
            out.print(f"- {memory.text} (why: {memory.why})", markup=False)


@memory_app.command("add")
def memory_add(
    topic: str,
    text: str,
    why: Annotated[str, typer.Option(help="Why it matters.")] = "",
    root: MemoryDir = Path("memory"),
) -> None:
    """Add a memory (a close one in the same topic is replaced)."""
    from fcsft.memory import Memory

    counts = _memory(root).add([Memory(topic, text, why)])
    out.print(", ".join(f"{k}: {v}" for k, v in counts.items()), markup=False)


@memory_app.command("forget")
def memory_forget(
    topic: str,
    text: Annotated[str, typer.Argument(help="Text the memory contains.")],
    root: MemoryDir = Path("memory"),
) -> None:
    """Remove the memory of TOPIC whose text contains TEXT."""
    if not _memory(root).forget(topic, text):
        raise UserError(f"no memory in {topic!r} contains {text!r}")
    out.print("forgotten", markup=False)


@memory_app.command("lessons")
def memory_lessons(
    stage: Annotated[Path, typer.Argument(help="A validate stage directory.")],
    root: MemoryDir = Path("memory"),
) -> None:
    """Turn what validation rejected most into teacher lessons (topic `teacher`)."""
    from fcsft.memory.extract import lessons_from_validation

    lessons = lessons_from_validation(stage)
    counts = _memory(root).add(lessons)
    for lesson in lessons:
        out.print(f"- {lesson.text} (why: {lesson.why})", markup=False)
    out.print(", ".join(f"{k}: {v}" for k, v in counts.items()), markup=False)


@app.command("train")
def train_command(
    data: Annotated[
        Path,
        typer.Option(
            help="Training data in the openai format, e.g. RUN/curate/out.jsonl (its test split "
            "is left out) or an exported train.openai.jsonl (which has no thinking)."
        ),
    ],
    target: Annotated[Path, typer.Option("--out", help="Output folder (model/ and checkpoints/).")],
    config: Annotated[
        Path | None, typer.Option(help="project.yaml whose train: section to use.")
    ] = None,
    steps: Annotated[
        int | None, typer.Option(help="Optimiser steps to train for (train.steps).")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the validation split and the trainer.")
    ] = None,
    stop_at: Annotated[
        int | None,
        typer.Option(help="End after this step of the schedule (train.stop_at); model/ is there."),
    ] = None,
) -> None:
    """LoRA SFT with loss on assistant tokens only; writes a merged model usable as local:PATH."""
    from fcsft.config import load_config
    from fcsft.files import check_output_dir, open_input
    from fcsft.runner.run import run_stage
    from fcsft.train.run import TrainConfig
    from fcsft.train.step import train_stage

    open_input(data).close()
    target = _stage_folder(check_output_dir(target, data).resolve(), "fcsft train")
    settings = load_config(config).train if config else TrainConfig()
    options = {"steps": steps, "seed": seed, "stop_at": stop_at}
    given = {key: value for key, value in options.items() if value is not None}
    if given:  # validated as a whole, so --stop-at past the last step is refused like train:
        settings = _config(TrainConfig, settings.model_dump() | given, "fcsft train")
    try:
        stats = run_stage(train_stage(settings, target), target.parent, [data])
    except KeyboardInterrupt:
        err.print(f"stopped at a checkpoint in {target}; the same command resumes", markup=False)
        raise typer.Exit(130) from None
    summary = stats["report"]
    if stats["rejected"]:
        err.print(
            f"{stats['rejected']} conversations too long for max_length={settings.max_length} "
            f"were left out; see {target / 'rejected.jsonl'}",
            markup=False,
        )
    out.print(
        f"{summary['steps']} steps, loss {summary['loss_first']:.3f} -> "
        f"{summary['loss_last']:.3f}, eval loss {summary['eval_loss']}, "
        f"{summary['wall_s']:.0f}s; model: {target / 'model'}",
        markup=False,
    )


def _live_progress():
    """A rich progress display and a factory of per-stage callbacks that feed it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    bars = Progress(
        TextColumn("{task.description:9}"),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TextColumn("{task.fields[extra]}"),
        console=err,
    )
    tasks: dict[str, int] = {}

    def on_progress(name: str):
        def update(progress) -> None:
            if name not in tasks:
                tasks[name] = bars.add_task(name, total=progress.total, extra="")
            counts = progress.counts
            tokens = int(counts.get("prompt_tokens", 0) + counts.get("completion_tokens", 0))
            eta = f"{progress.eta:.0f}s" if progress.eta is not None else "?"
            extra = (
                f"{progress.rate:.2f}/s ETA {eta} out {counts.get('out', 0)} "
                f"rej {counts.get('rejected', 0)} tok {tokens} "
                f"cost {counts.get('cost', 0.0):.4f}"
            )
            bars.update(tasks[name], completed=progress.done, extra=extra)

        return update

    return bars, on_progress


@app.command("run")
def run_command(
    config: Annotated[Path, typer.Argument(help="project.yaml")],
    start: Annotated[str | None, typer.Option("--from", help="First step to run.")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Last step to run.")] = None,
) -> None:
    """Run the pipeline's steps in order, or those from --from to --until; resumable.

    The steps are those registered (`fcsft --help` lists them, each also a command)."""
    from rich.table import Table

    from fcsft.config import load_config, require_inputs
    from fcsft.runner.pipeline import Run, run_pipeline

    project = load_config(config)
    require_inputs(project, config)  # before any work, not when the step that reads it comes
    bars, on_progress = _live_progress()

    def on_stage(name: str, stats: dict) -> None:
        for problem in stats.get("report", {}).get("problems", [])[:10]:
            err.print(problem, markup=False)
        if "in" in stats:
            err.print(
                f"{name}: {stats.get('in', 0)} in, {stats.get('out', 0)} out, "
                f"{stats.get('rejected', 0)} rejected"
                + (
                    f" ({', '.join(f'{k} {v}' for k, v in list(stats.get('reasons', {}).items())[:4])})"
                    if stats.get("reasons")
                    else ""
                ),
                markup=False,
            )

    run = Run(project, config.parent.resolve(), on_stage=on_stage, on_progress=on_progress)
    with bars:
        results = run_pipeline(run, start, until)
    table = Table("stage", "in", "out", "rejected", "wall s")
    for name, stats in results.items():
        table.add_row(
            name,
            str(stats.get("in", "")),
            str(stats.get("out", "")),
            str(stats.get("rejected", "")),
            str(stats.get("wall_s", "")),
        )
    out.print(table)
    export = results.get("export", {}).get("report")
    if export:
        out.print(f"dataset: {project.run_dir / 'export'}  card: {export['card']}", markup=False)
    if "train" in results:
        out.print(f"model: {project.run_dir / 'train' / 'model'}", markup=False)
    for line in results.get("validate", {}).get("lessons_history", []):
        out.print(f"teacher {line}", markup=False)
    from fcsft.runner.lessons import memory_lines

    for line in memory_lines(results.get("generate", {}).get("report") or {}):
        out.print(f"memory: {line}", markup=False)
    evaluation = results.get("evaluate", {}).get("report")
    if evaluation:
        from fcsft.evaluate.report import headline_metric

        for layer, change in evaluation["layers"].items():
            headline = headline_metric(change)
            if headline in change:
                out.print(f"eval {layer}: {headline} {change[headline]:+.1%} (tuned - base)")
        out.print(f"report: {evaluation['html']}", markup=False)


@app.command("export")
def export_command(
    config: Annotated[Path, typer.Argument(help="project.yaml")],
    push_to_hub: Annotated[
        str | None,
        typer.Option(
            "--push-to-hub",
            metavar="REPO",
            help="Then upload the folder as Hub dataset REPO (user/name); token from HF_TOKEN.",
        ),
    ] = None,
    private: Annotated[bool, typer.Option(help="Create the Hub repository private.")] = False,
) -> None:
    """The dataset files in export.formats and the card README.md
    (fcsft run --from export --until export), optionally pushed to the Hugging Face Hub."""
    run_command(config, start="export", until="export")
    if push_to_hub:
        from fcsft.config import load_config
        from fcsft.hub import push_folder

        folder = load_config(config).run_dir / "export"
        out.print(f"pushed to {push_folder(folder, push_to_hub, private)}", markup=False)


@app.command("review")
def review_command(
    run_dir: Annotated[Path, typer.Argument(help="Run directory holding validate/.")],
    apply_decisions: Annotated[
        bool,
        typer.Option(
            "--apply", help="Write review/out.jsonl and report.json from the decisions so far."
        ),
    ] = False,
    fraction: Annotated[
        float | None, typer.Option(help="Share of each stratum to sample (default 0.1).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the draw (default 0).")] = None,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1; 0 picks a free one.")] = 0,
) -> None:
    """Spot-check a stratified sample of validate's decisions in a local page, then --apply.

    Strata: first tool, how, source, automatic verdict. Kept in RUN_DIR/review/review.sqlite.
    """
    from fcsft.review import apply_review, begin_review, serve, summary_line

    _bounded("--port", port, 0, 65535)
    if apply_decisions:
        from fcsft.runner.lock import run_dir_lock

        with run_dir_lock(run_dir):
            report = apply_review(run_dir, command=f"fcsft review {run_dir} --apply")
        out.print(f"{summary_line(report)} -> {run_dir / 'review'}", markup=False)
        return
    review = begin_review(run_dir, fraction, seed)
    strata = review.store.strata()
    population = {
        auto: sum(s.population for s in strata if s.stratum.auto == auto)
        for auto in ("accepted", "rejected")
    }
    reviewed, total = review.store.progress()
    out.print(
        f"{'drew' if review.drawn_now else 'reopened'} a sample of {total} from "
        f"{sum(population.values())} validated ({population['accepted']} accepted, "
        f"{population['rejected']} rejected) in {len(strata)} strata "
        f"(fraction {review.info.fraction:g}, seed {review.info.seed}); "
        f"{reviewed} / {total} reviewed",
        markup=False,
    )
    if review.inputs_changed:
        err.print(
            "warning: validate output changed since this sample was drawn; new records are not "
            f"in it (delete {review.store.path} to draw anew, losing decisions)",
            markup=False,
        )

    def ready(url: str) -> None:
        out.print(f"review at {url}  (Ctrl-C to stop)", markup=False)

    serve(review.store, port, on_ready=ready)
    reviewed, total = review.store.progress()
    out.print(
        f"{reviewed} / {total} reviewed; apply with: fcsft review {run_dir} --apply", markup=False
    )


eval_app = typer.Typer(
    help="Evaluate a model on eval items, BFCL and MMLU; score predictions; compare two runs.",
    invoke_without_command=True,
)
app.add_typer(eval_app, name="eval")


@eval_app.callback()
def eval_command(
    ctx: typer.Context,
    model: Annotated[
        str | None,
        typer.Option(help="Model URI (openai:M@URL, local:smollm2, local:PATH) or a model folder."),
    ] = None,
    target: Annotated[Path | None, typer.Option("--out", help="Eval directory to write.")] = None,
    items: Annotated[
        list[Path] | None, typer.Option(help="Eval items JSONL (from `fcsft testset`); repeatable.")
    ] = None,
    bfcl: Annotated[
        list[str] | None, typer.Option(help="BFCL category, e.g. simple_python; repeatable.")
    ] = None,
    bfcl_limit: Annotated[
        int | None, typer.Option(help="At most this many items per BFCL category (seeded).")
    ] = None,
    split: Annotated[
        str,
        typer.Option(
            help="Part of each BFCL category: dev (make every choice here), test (score the "
            "final model once) or all."
        ),
    ] = "dev",
    mmlu: Annotated[int, typer.Option(help="MMLU questions for forgetting (0: none).")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the BFCL and MMLU subsets.")] = 0,
    protocol: Annotated[
        str,
        typer.Option(
            help="native (function calling), tagged (fcsft text over an API), bfcl (BFCL's own "
            "prompting form: functions in the system prompt, calls written as Python) or "
            "bfcl-fewshot (the same with three worked examples)."
        ),
    ] = "native",
    max_tokens: Annotated[int, typer.Option(help="Completion tokens per reply.")] = 256,
    concurrency: Annotated[
        int | None,
        typer.Option(
            help="Requests in flight to the model (models.ROLE.concurrency); default 32, or four "
            "batches for a local model, so that it batches prompts of similar length."
        ),
    ] = None,
    api_key_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the API key.")
    ] = None,
    precision: Annotated[
        str,
        typer.Option(help="Local models: auto (bf16 where the hardware runs it fast), fp32, bf16."),
    ] = "auto",
    call_bias: Annotated[
        float,
        typer.Option(
            help="Local models: added to the log-odds of opening a tool call where a reply "
            "chooses between calling and answering (negative: calls less); set it on dev."
        ),
    ] = 0.0,
    replies: Annotated[
        Path | None,
        typer.Option(
            help="Response cache to use instead of OUT/cache.sqlite. Evaluations of one local "
            "model with several --call-bias values that share one generate only the replies "
            "a bias changes (run the bias 0 one first)."
        ),
    ] = None,
) -> None:
    """Ask a model the items (turn by turn, as trained), score, and write report.json/.html."""
    if ctx.invoked_subcommand is not None:
        given = [  # by name: typer may bring its own copy of click's ParameterSource
            param.opts[0]
            for param in ctx.command.params
            if getattr(ctx.get_parameter_source(param.name), "name", "") == "COMMANDLINE"
        ]
        if given:
            raise UserError(
                f"{', '.join(given)}: options of `fcsft eval` itself, which `fcsft eval "
                f"{ctx.invoked_subcommand}` does not take; see fcsft eval "
                f"{ctx.invoked_subcommand} --help"
            )
        return
    if model is None or target is None:
        raise UserError("fcsft eval needs --model and --out (see fcsft eval --help)")
    if protocol not in ("native", "tagged", "bfcl", "bfcl-fewshot"):
        raise UserError(f"--protocol {protocol!r}: expected native, tagged, bfcl or bfcl-fewshot")
    if precision not in ("auto", "fp32", "bf16"):
        raise UserError(f"--precision {precision!r}: expected auto, fp32 or bf16")
    if split not in ("dev", "test", "all"):
        raise UserError(f"--split {split!r}: expected dev, test or all")
    _bounded("--mmlu", mmlu, 0)
    _bounded("--bfcl-limit", bfcl_limit, 1)
    _bounded("--max-tokens", max_tokens, 1)
    _bounded("--concurrency", concurrency, 1)
    if not math.isfinite(call_bias):
        raise UserError(f"--call-bias {call_bias}: expected a finite number")
    from fcsft.evaluate.run import EvalPlan, evaluate
    from fcsft.files import check_output_dir

    check_output_dir(target)
    if replies is not None and replies.is_dir():
        raise UserError(
            f"--replies {replies}: is a folder; name a cache file, e.g. dev/cache.sqlite"
        )

    plan = EvalPlan(
        model=model,
        out_dir=target,
        items=list(items or []),
        bfcl=list(bfcl or []),
        bfcl_limit=bfcl_limit,
        split=split,  # type: ignore[arg-type]
        mmlu=mmlu,
        seed=seed,
        protocol=protocol,  # type: ignore[arg-type]
        max_tokens=max_tokens,
        concurrency=concurrency,
        api_key_env=api_key_env,
        precision=precision,
        call_bias=call_bias,
        replies=replies,
        command="fcsft " + " ".join(sys.argv[1:]),
    )
    from fcsft.runner.run import run_stage

    bars, on_progress = _live_progress()
    with bars:
        result = evaluate(plan, run_stage, on_progress("predict"))
    _print_report(result)
    out.print(f"report: {target / 'report.html'}", markup=False)
    if result.get("model_errors"):
        # Not a finished evaluation: the same command asks the model those items again.
        err.print(
            f"run the same command again to ask the model the {result['model_errors']} "
            "failed items again",
            markup=False,
        )
        raise typer.Exit(1)


def _print_report(result: dict) -> None:
    from rich.table import Table

    from fcsft.evaluate.report import METRICS

    table = Table("layer", *METRICS)
    for layer, metrics in result["layers"].items():
        cells = [
            f"{metrics[m]['rate']:.1%} (n={metrics[m]['n']})"
            if metrics.get(m, {}).get("n")
            else "-"
            for m in METRICS
        ]
        table.add_row(layer, *cells)
    out.print(table)
    if result.get("model_errors"):
        err.print(f"{result['model_errors']} items failed in the model and are not scored")
    for layer, cells in result.get("multi_turn", {}).get("success", {}).items():
        out.print(
            f"{layer} task success: "
            + ", ".join(
                f"{judge} {c['value']:.1%} [{c['ci95'][0]:.1%}, {c['ci95'][1]:.1%}] n={c['n']}"
                for judge, c in cells.items()
            ),
            markup=False,
        )
    for form, cell in result.get("mmlu", {}).items():
        if isinstance(cell, dict):
            out.print(
                f"MMLU {form}: {cell['value']:.1%} [{cell['ci95'][0]:.1%}, {cell['ci95'][1]:.1%}]"
                f" n={cell['n']}" + (" (counts)" if result["mmlu"]["counts"] == form else ""),
                markup=False,
            )


@eval_app.command("score")
def eval_score(
    predictions: Annotated[
        Path, typer.Option(help="Predictions JSONL (see fcsft.evaluate.predict).")
    ],
    items: Annotated[Path, typer.Option(help="The eval items they answer.")],
    target: Annotated[Path, typer.Option("--out", help="Directory for scores and the report.")],
) -> None:
    """Score predictions made elsewhere against eval items."""
    from fcsft.evaluate.predict import read_predictions
    from fcsft.evaluate.report import report
    from fcsft.evaluate.testset import read_items
    from fcsft.files import check_output_dir
    from fcsft.jsonl import write_jsonl

    check_output_dir(target)
    asked, answered = read_items(items), read_predictions(predictions)
    write_jsonl(target / "items.jsonl", asked)
    write_jsonl(target / "predictions" / "out.jsonl", answered)
    result = report(target, {"command": "fcsft " + " ".join(sys.argv[1:])})
    _print_report(result)
    out.print(f"report: {target / 'report.html'}", markup=False)


@eval_app.command("compare")
def eval_compare(
    base: Annotated[Path, typer.Argument(help="Eval directory of the base model.")],
    tuned: Annotated[Path, typer.Argument(help="Eval directory of the tuned model.")],
    target: Annotated[Path, typer.Option("--out", help="Directory for compare.json/.html.")],
) -> None:
    """Base vs tuned per layer and metric: McNemar's p and Newcombe's paired intervals, MMLU."""
    from fcsft.evaluate.report import compare
    from fcsft.files import check_output_dir

    check_output_dir(target)

    for directory in (base, tuned):
        if not (directory / "predictions" / "out.jsonl").exists():
            raise UserError(f"{directory}: not an eval directory (run fcsft eval --out there)")
    result = compare(base, tuned, target)
    paired = result["paired"]
    if paired["only_base"] or paired["only_tuned"]:
        err.print(
            f"warning: compared on the {paired['items']} items both answered; "
            f"{paired['only_base']} only in {base}, {paired['only_tuned']} only in {tuned}",
            markup=False,
        )
    for layer, metrics in result["layers"].items():
        for metric in ("full_call", "no_call"):
            if metric in metrics:
                cell = metrics[metric]
                out.print(
                    f"{layer:24} {metric:10} {cell['base']['value']:.1%} -> "
                    f"{cell['tuned']['value']:.1%} ({cell['difference']:+.1%}, "
                    f"p={cell['p_value']:.3g}, n={cell['n']})",
                    markup=False,
                )
    mmlu = result.get("mmlu", {})
    if mmlu.get("counts"):
        from fcsft.evaluate.report import difference_text

        cell = mmlu[mmlu["counts"]]
        margin = f"±{mmlu['margin']:.0%}"
        verdict = {True: f"within {margin}", False: f"NOT within {margin}", None: "not judged"}
        out.print(
            f"MMLU ({mmlu['counts']}) {cell['base']['value']:.1%} -> {cell['tuned']['value']:.1%} "
            f"({difference_text(cell)}, {verdict[cell['within_margin']]}, "
            f"p={cell['p_value']:.3g}, n={cell['n']})",
            markup=False,
        )
    out.print(f"report: {target / 'compare.html'}", markup=False)


@app.command("testset")
def testset_command(
    curated: Annotated[
        Path, typer.Argument(help="curate/out.jsonl of a run (or a run directory).")
    ],
    target: Annotated[Path, typer.Option("--out", help="Eval items JSONL to write.")],
    standard: Annotated[int, typer.Option(help="Layer 1 size: held-out families.")] = 100,
    ood: Annotated[int, typer.Option(help="Layer 2 size: out of distribution.")] = 50,
    adversarial: Annotated[int, typer.Option(help="Layer 3 size: should not call.")] = 30,
    held_out_tool: Annotated[
        list[str] | None, typer.Option(help="A tool held out of training; repeatable.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the draw.")] = 0,
) -> None:
    """The three eval layers from a run's test split: standard, OOD, adversarial."""
    from collections import Counter

    from fcsft.evaluate.testset import build_testset
    from fcsft.files import check_target
    from fcsft.jsonl import write_jsonl

    for flag, size in (("--standard", standard), ("--ood", ood), ("--adversarial", adversarial)):
        _bounded(flag, size, 0)
    if curated.is_dir():
        curated = curated / "curate" / "out.jsonl"
    if not curated.exists():
        raise UserError(f"{curated}: no such file (run fcsft run --until curate first)")
    check_target(target, curated, option="--out")
    items = build_testset(curated, standard, ood, adversarial, held_out_tool or (), seed)
    write_jsonl(target, items)
    counts = Counter(item["layer"] for item in items)
    out.print(
        f"{len(items)} items -> {target}: "
        + ", ".join(
            f"{layer} {counts.get(layer, 0)}" for layer in ("standard", "ood", "adversarial")
        ),
        markup=False,
    )


def main() -> None:
    try:
        app()
    except UserError as exc:
        err.print(f"error: {exc}", markup=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
