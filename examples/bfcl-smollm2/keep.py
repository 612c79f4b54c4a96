"""Copy the part of a proof run that its results page is generated from into the repository,
and what lets the run go on elsewhere; or copy it back into a run directory.

    python examples/bfcl-smollm2/keep.py RUN_DIR [--to examples/bfcl-smollm2/kept]
    python examples/bfcl-smollm2/keep.py RUN_DIR --restore [--to examples/bfcl-smollm2/kept]

A run directory holds gigabytes (merged models, checkpoints, reply caches) and is not
committed; the page (results.py) reads only reports, comparisons, stage statistics and the
command log. This copies those, with what a reviewer needs to check them again: each
evaluation's items, predictions and per-item scores (BFCL's checker can be run over them
anew), the exported training data, and the LoRA adapter of every trained model
(`local:KEPT/train-sN/.../adapter` evaluates it again: it is merged into the base once). A
fully fine-tuned model has no adapter and its weights (over 500 MB at 135M parameters) are
not kept: only its fcsft.json, and the line keep.py prints names it. `results.py KEPT` then
writes the same page as `results.py RUN_DIR`. The folder is replaced whole, so a failed copy
leaves the previous one as it was.

The full run takes longer than one working session on a 2-core machine, so the kept folder
also holds the stages' bookkeeping (markers, ledgers) of the build's model-written answers,
of each training and of each evaluation's predictions, finished or not. `--restore` copies
the kept files a run directory lacks back into it: run.sh, started again, then skips every
stage whose marker still matches (same data, settings and weights) and resumes a partly
asked evaluation; a stage whose marker does not match is run afresh, so restoring another
recipe's files costs time, never a wrong figure. Training checkpoints are not kept: a
training cut short starts again.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from fcsft.files import replacing_folder

KEPT = Path(__file__).resolve().parent / "kept"
PATTERNS = (  # relative to the run directory; `*` stays within one folder
    "commands.jsonl",
    "running.json",  # the time of a command still running (log.sh)
    "testset.jsonl",
    "*/report.json",
    "*/compare.json",
    "*/compare.png",
    "*/items.jsonl",
    "*/scores.jsonl",
    "*/mmlu.jsonl",
    "*/predictions/out.jsonl",
    "*/stats.json",
    "dev/choice.json",
    "dev/*/report.json",
    "dev/*/scores.jsonl",
    "dev/*/items.jsonl",
    "dev/*/predictions/out.jsonl",
    "curate/contamination.jsonl",
    "export/*.jsonl",
    "export/README.md",
    "train-s*/model/fcsft.json",
    "train-s*/model-step-*/fcsft.json",
    "train-s*/model*/adapter/*",
    # the bookkeeping that lets a restored run skip or resume a stage (see --restore)
    "general/*",
    "train-s*/*",
    "*/predictions/*",
    "dev/*/predictions/*",
    "*/mmlu.json",
)


def tested_models(root: Path) -> list[Path]:
    """The model folders, inside the run, that an evaluation of the test part names."""
    found = []
    for path in sorted(root.glob("eval-tuned-s*/report.json")):
        model = json.loads(path.read_text()).get("model", "")
        folder = Path(model.removeprefix("local:"))
        if folder.name == "adapter":  # a LoRA model named by its adapter (run.sh's model_at)
            folder = folder.parent
        if model.startswith("local:") and folder.resolve().is_relative_to(root.resolve()):
            found.append(folder.resolve().relative_to(root.resolve()))
    return found


def method(folder: Path) -> str | None:
    """How fcsft train made the model in `folder` (`lora` or `full`), from its fcsft.json."""
    summary = folder / "fcsft.json"
    if not summary.is_file():
        return None
    return json.loads(summary.read_text()).get("config", {}).get("method")


def files_to_keep(root: Path) -> tuple[list[Path], list[Path]]:
    """Every file to copy, relative to the run directory, and the tested models whose weights
    are left behind (fully fine-tuned: no adapter)."""
    chosen = {p.relative_to(root) for pattern in PATTERNS for p in root.glob(pattern)}
    whole = []
    for model in tested_models(root):
        adapter = root / model / "adapter"
        if method(root / model) == "full":
            whole.append(model)
        elif not adapter.is_dir():
            raise SystemExit(f"{adapter}: missing; the model was not written by fcsft train")
    return sorted(p for p in chosen if (root / p).is_file()), whole


def keep(root: Path, to: Path) -> tuple[list[Path], list[Path]]:
    files, whole = files_to_keep(root)
    with replacing_folder(to) as folder:
        for relative in files:
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / relative, folder / relative)
    return files, whole


def restore(kept: Path, root: Path) -> list[Path]:
    """Copy each kept file that `root` lacks into it; returns those copied (relative)."""
    copied = []
    for path in sorted(p for p in kept.rglob("*") if p.is_file()):
        relative = path.relative_to(kept)
        if not (root / relative).exists():
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, root / relative)
            copied.append(relative)
    return copied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--to", type=Path, default=KEPT)
    parser.add_argument(
        "--restore",
        action="store_true",
        help="copy the kept files RUN_DIR lacks into it (run.sh then skips what they finished)",
    )
    args = parser.parse_args(argv)
    if args.restore:
        if not args.to.is_dir():
            print(f"{args.to}: no kept folder to restore from", file=sys.stderr)
            return 2
        copied = restore(args.to, args.run_dir)
        print(f"restored {len(copied)} files from {args.to} into {args.run_dir}")
        return 0
    if not (args.run_dir / "commands.jsonl").is_file():
        print(f"{args.run_dir}: no commands.jsonl; name a directory run.sh wrote", file=sys.stderr)
        return 2
    files, whole = keep(args.run_dir, args.to)
    size = sum((args.to / f).stat().st_size for f in files)
    print(f"kept {len(files)} files ({size / 1e6:.1f} MB) in {args.to}")
    for model in whole:
        print(f"not kept: the weights of {model} (full fine-tuning; run.sh trains it again)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
