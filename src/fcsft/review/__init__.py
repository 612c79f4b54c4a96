"""The human tier of validation: a person spot-checks a stratified sample of what the rules decided.

    begin_review(run_dir)   draw the sample into run_dir/review/review.sqlite (once; reused after)
    serve(review.store)     the local page where a person accepts or rejects, keyboard first
    apply_review(run_dir)   review/out.jsonl without the human-rejected records, and report.json
                            with the rules' estimated precision and false-rejection rate

The web part needs the `[review]` extra (fastapi, uvicorn); drawing and applying need nothing.
"""

from fcsft.review.apply import apply_review, summary_line
from fcsft.review.begin import Review, begin_review, open_review
from fcsft.review.sample import Sample, Stratum, draw, sample_size
from fcsft.review.server import serve
from fcsft.review.store import ReviewStore

__all__ = [
    "Review",
    "ReviewStore",
    "Sample",
    "Stratum",
    "apply_review",
    "begin_review",
    "draw",
    "open_review",
    "sample_size",
    "serve",
    "summary_line",
]
