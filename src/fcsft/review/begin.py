"""Open a run's review: draw the sample the first time, reuse it every time after.

Re-drawing would throw away decisions and let a reviewer reroll an awkward sample, so a stored
sample is never replaced silently: asking for another fraction or seed is an error that says
how to start over, and validate output that changed since the draw is reported as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fcsft.errors import UserError
from fcsft.files import file_hash
from fcsft.review.sample import draw
from fcsft.review.store import ReviewStore, SampleInfo

DEFAULT_FRACTION = 0.1
DEFAULT_SEED = 0


def review_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "review"


def store_path(run_dir: Path) -> Path:
    return review_dir(run_dir) / "review.sqlite"


def validate_inputs(run_dir: Path) -> list[Path]:
    """The validate stage files the sample is drawn from (rejected.jsonl may be missing)."""
    directory = Path(run_dir) / "validate"
    return [
        path for path in (directory / "out.jsonl", directory / "rejected.jsonl") if path.exists()
    ]


def inputs_hash(run_dir: Path) -> str:
    return file_hash(validate_inputs(run_dir))


@dataclass
class Review:
    store: ReviewStore
    info: SampleInfo
    drawn_now: bool  # False when an earlier run's sample was reopened
    inputs_changed: bool  # validate output differs from what the sample was drawn from


def begin_review(run_dir: Path, fraction: float | None = None, seed: int | None = None) -> Review:
    """The run's review, drawing its sample when there is none yet."""
    run_dir = Path(run_dir)
    path = store_path(run_dir)
    if not (run_dir / "validate" / "out.jsonl").exists():
        raise UserError(f"{run_dir / 'validate' / 'out.jsonl'}: no such file; run validate first")
    store = ReviewStore(path)
    info = store.info()
    if info is not None:
        asked = {"fraction": fraction, "seed": seed}
        stored = {"fraction": info.fraction, "seed": info.seed}
        for name, value in asked.items():
            if value is not None and value != stored[name]:
                raise UserError(
                    f"{path} holds a sample drawn with {name} {stored[name]}, not {value}; "
                    f"omit --{name} to keep it, or delete {path} to draw anew (losing decisions)"
                )
        return Review(store, info, False, info.input_hash != inputs_hash(run_dir))
    digest = inputs_hash(run_dir)
    sample = draw(
        run_dir / "validate",
        DEFAULT_FRACTION if fraction is None else fraction,
        DEFAULT_SEED if seed is None else seed,
    )
    store.save_sample(sample, digest)
    info = store.info()
    assert info is not None
    return Review(store, info, True, False)


def open_review(run_dir: Path) -> Review:
    """An existing review, for applying it; a UserError when none was started."""
    path = store_path(run_dir)
    info = ReviewStore(path).info() if path.exists() else None
    if info is None:
        raise UserError(f"{path}: no review sample yet; run `fcsft review {run_dir}` first")
    return Review(ReviewStore(path), info, False, info.input_hash != inputs_hash(run_dir))
