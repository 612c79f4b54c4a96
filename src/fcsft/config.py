"""`project.yaml`, typed: one pydantic model per section, one docstring per field.

Invalid config fails before any work, with every error's field path (`models.teacher.uri`)
and what to write instead. `fcsft config --schema` prints the JSON schema of all of it.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from fcsft.curate.stage import CurateConfig
from fcsft.errors import UserError, validation_problems
from fcsft.evaluate.run import EvaluateConfig
from fcsft.expand.pipeline import ExpandConfig
from fcsft.export import ExportConfig
from fcsft.files import read_text
from fcsft.generate.stage import GenerateConfig
from fcsft.memory.config import MemoryConfig
from fcsft.models.config import ModelConfig
from fcsft.models.registry import anchored, uri_path
from fcsft.section import Section
from fcsft.tools.config import ToolEntry
from fcsft.train.run import TrainConfig
from fcsft.validate.stage import ValidateConfig

RETIRED = {
    ("generate", "mode"): "renamed `protocol` (tagged or native, as `fcsft eval --protocol`)",
    ("generate", "concurrency"): "the teacher's tasks in flight follow its requests in flight: "
    "set `concurrency` on the teacher's entry in `models:`",
    ("train", "max_steps"): "renamed `steps` (optimiser steps; `max_steps` is the agent's "
    "steps per trajectory, in `generate`)",
    ("evaluate", "concurrency"): "name a role of `models:` in `evaluate.base` (or `model`) and "
    "set `concurrency` there",
    ("evaluate", "precision"): "name a role of `models:` in `evaluate.base` (or `model`) and "
    "set `precision` there",
}
"""Words project.yaml no longer takes, by (section, key), with what to write instead: an old
config is refused with the fix rather than read with another meaning."""


class SeedsConfig(Section):
    files: list[Path] = Field(default_factory=list)
    """Seed files (.jsonl, .csv, .yaml); relative paths are relative to project.yaml."""
    logs: list[Path] = Field(default_factory=list)
    """Chat logs (JSONL of {"messages": [...]}) to mine user questions from."""
    pii: Literal["patterns", "presidio"] = "patterns"
    """What scrubs personal data from mined questions: fcsft's patterns (e-mail, IBAN, card,
    SSN, IP, account number, street address, phone), or those and Presidio's analyzer for
    names and places (`pip install 'fcsft[pii]'` and a spaCy model)."""
    source: str = "import"
    """Source for seed rows that do not say (log, expert or import)."""
    domain: str = ""
    """Domain for seed rows that do not say."""
    limit: int | None = Field(None, ge=1)
    """Use only the first N seeds (a quick sample run)."""


class ProjectConfig(Section):
    name: str = "fcsft-project"
    """A name for the project, shown in reports and the dataset card."""
    run_dir: Path = Path("runs/default")
    """Where every stage writes its artifacts (relative paths are relative to project.yaml)."""
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    """Models by role, e.g. `teacher`, `student`, `judge`; stages refer to them by role."""
    seeds: SeedsConfig = Field(default_factory=lambda: SeedsConfig())
    """Where the seed questions come from."""
    tools: list[ToolEntry] = Field(default_factory=list)
    """The tools trajectories may call: built-ins, `module:function`, MCP servers, simulated."""
    expand: ExpandConfig = Field(default_factory=ExpandConfig)
    """Rewrites, variations and combinations."""
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    """The teacher and how it runs."""
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    """Lessons from validation that reach the teacher within the run (off by default)."""
    validate_: ValidateConfig = Field(default_factory=ValidateConfig, alias="validate")
    """Format and logic rules."""
    curate: CurateConfig = Field(default_factory=CurateConfig)
    """Balance, general mix, dedup, decontamination and the split."""
    export: ExportConfig = Field(default_factory=ExportConfig)
    """Dataset formats and card."""
    train: TrainConfig = Field(default_factory=TrainConfig)
    """Fine-tuning."""
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    """Base vs trained model on the three layers of the run's test split (and BFCL, MMLU)."""

    @model_validator(mode="after")
    def _one_max_steps(self) -> ProjectConfig:
        """Validation accepts what the teacher was allowed unless it says otherwise."""
        if self.validate_.max_steps is None:
            self.validate_.max_steps = self.generate.max_steps
        return self


def load_config(path: Path | str) -> ProjectConfig:
    """Read and validate project.yaml; every problem is reported at once, each with its path."""
    path = Path(path)
    text = read_text(path)
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise UserError(f"{path}{where}: not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of sections at the top level")
    try:
        config = ProjectConfig.model_validate(data)
    except ValidationError as exc:
        raise UserError(f"{path}: invalid config\n" + "\n".join(config_errors(exc))) from None
    for key in ("base", "model"):
        name = getattr(config.evaluate, key)
        if name is None or name in config.models:
            continue
        try:
            ModelConfig(uri=name)
            known = ":" in name
        except ValidationError:
            known = False
        if not known:
            raise UserError(
                f"{path}: evaluate.{key}: {name!r} is neither a role of `models:` "
                f"({', '.join(config.models) or 'none'}) nor a model URI (local:PATH, "
                "openai:NAME@URL, mock:FILE)"
            )
    base_dir = path.parent.resolve()
    if not config.run_dir.is_absolute():
        config.run_dir = (base_dir / config.run_dir).resolve()
    _anchor_model_paths(config, base_dir)
    return config


def unset_keys(config: ProjectConfig) -> list[str]:
    """A line for each `openai:` model whose key variable is not set in this environment."""
    return [
        f"models.{role}: ${settings.api_key_env} is not set, so {settings.uri} is called "
        "without a key (fine for a local server that needs none)"
        for role, settings in config.models.items()
        if settings.uri.startswith("openai:") and not os.environ.get(settings.api_key_env)
    ]


def require_inputs(config: ProjectConfig, path: Path) -> None:
    """A UserError naming every file or folder `config` (read from `path`) reads that is not
    there: on one line when it is one."""
    missing = missing_inputs(config, path.parent.resolve())
    if len(missing) == 1:
        raise UserError(f"{path}: {missing[0]}")
    if missing:
        raise UserError(f"{path}: names what is not there\n" + "\n".join(f"  {m}" for m in missing))


def missing_inputs(config: ProjectConfig, base_dir: Path) -> list[str]:
    """A line for each file or folder the config reads that is not there (relative paths from
    `base_dir`, the folder of project.yaml, as the stages take them), in the config's order:
    found before any work, where a run would stop at the first when its stage came. Paths in
    the run folder are the run's own outputs and are not asked for."""
    made = config.run_dir.resolve()  # what the run writes (its own trained model) comes later
    missing = []
    for where, path in _paths(config, ""):
        full = (base_dir / path).resolve()  # an absolute path stays itself
        if not full.exists() and made not in (full, *full.parents):
            missing.append(f"{where}: {full} does not exist")
    return missing


def _paths(value: Any, where: str) -> Iterator[tuple[str, Path]]:
    """Every path in a config value with its field path (`seeds.files[0]`): Path fields, and
    the file or folder of a `local:PATH` or `mock:FILE` model URI."""
    if isinstance(value, Path):
        yield where, value
    elif isinstance(value, str) and (path := uri_path(value)) is not None:
        yield where, path
    elif isinstance(value, BaseModel):
        for name, field in type(value).model_fields.items():
            key = field.alias or name
            yield from _paths(getattr(value, name), f"{where}.{key}" if where else key)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _paths(item, f"{where}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, f"{where}.{key}")


def _anchor_model_paths(config: ProjectConfig, base_dir: Path) -> None:
    """Model and tokenizer paths (`local:PATH`, `mock:FILE`) relative to project.yaml, like the
    config's other paths, wherever the command is run from."""
    for settings in config.models.values():
        settings.uri = anchored(settings.uri, base_dir)
    config.export.tokenizer = anchored(config.export.tokenizer, base_dir)
    config.train.base = anchored(config.train.base, base_dir)
    config.evaluate.base = anchored(config.evaluate.base, base_dir)
    if config.evaluate.model:
        config.evaluate.model = anchored(config.evaluate.model, base_dir)


def config_errors(exc: ValidationError) -> list[str]:
    """One line per error: the field path, what is wrong, and for unknown keys the likely fix."""
    lines = []
    for error, problem in zip(exc.errors(), validation_problems(exc), strict=True):
        retired = RETIRED.get(tuple(error["loc"]))
        if retired:
            problem = f"{'.'.join(map(str, error['loc']))}: no longer a setting; {retired}"
        hint = _suggestion(error["loc"]) if error["type"] == "extra_forbidden" else ""
        lines.append(f"  {problem}{'' if retired else hint}")
    return lines


def _suggestion(loc: tuple[Any, ...]) -> str:
    model: Any = ProjectConfig
    for part in loc[:-1]:
        field = _keys(model).get(part)
        if field is None:
            continue
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        model = args[-1] if args else annotation
    known = list(_keys(model))
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.5)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; known fields: {', '.join(known)}" if known else ""


def _keys(model: Any) -> dict[str, Any]:
    """A section's fields by the key written in YAML: the alias where a field has one
    (`validate`, whose attribute is `validate_`)."""
    fields = getattr(model, "model_fields", {})
    return {field.alias or name: field for name, field in fields.items()}
