"""The `fcsft` command. User errors print one line and exit 2; bugs keep their traceback."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from fcsft.errors import UserError

app = typer.Typer(
    help="Function-calling SFT by data engineering: build, check, train and prove.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


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
    """
    from fcsft.convert import convert_file

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
    """Validate a project config; every error is listed with its field path."""
    from fcsft.config import load_config

    project = load_config(config)
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


def main() -> None:
    try:
        app()
    except UserError as exc:
        err.print(f"error: {exc}", markup=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
