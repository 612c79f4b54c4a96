"""Publish an export folder as a Hugging Face Hub dataset repository.

The folder is already what the Hub reads: README.md (the card, whose front matter lists each
format as a `datasets` config), the data files, `dataset_info.json` and the plots. The token
comes from `HF_TOKEN`, or from huggingface_hub's own login (`hf auth login`). A failure to
reach the Hub or to be let in is a user error: one line, no traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

from fcsft.errors import UserError, require

# Files of the folder that are not the dataset: the stage's own bookkeeping (stats.json names
# local paths) and half-written temporaries.
IGNORED = ["stats.json", "out.jsonl", "rejected.jsonl", "_*", ".*", "**/.*"]  # the runner's files
_NETWORK_PACKAGES = {"httpx", "httpx2", "requests", "urllib3", "aiohttp"}


def push_folder(folder: Path, repo: str, private: bool = False) -> str:
    """Create dataset repo `repo` if needed and upload `folder` to it; returns the repo's URL."""
    hub = require("huggingface_hub", "hub")
    if not (folder / "README.md").exists():
        raise UserError(f"{folder}: no README.md; run `fcsft export` before pushing")
    api = hub.HfApi(token=os.environ.get("HF_TOKEN") or None)
    try:
        url = api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
        api.upload_folder(
            repo_id=repo,
            repo_type="dataset",
            folder_path=folder,
            ignore_patterns=IGNORED,
            commit_message="Dataset exported by fcsft",
        )
    except Exception as exc:
        if not _unreachable_or_refused(exc, hub):
            raise
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(
            f"could not push {folder} to the Hub dataset {repo}: {reason} (the token comes from "
            "HF_TOKEN or `hf auth login`)"
        ) from None
    return str(url)


def _unreachable_or_refused(exc: Exception, hub) -> bool:
    """A network failure, an HTTP error from the Hub, or a missing token: not a bug of ours."""
    if isinstance(exc, OSError | hub.errors.HfHubHTTPError):
        return True
    return any(cls.__module__.split(".")[0] in _NETWORK_PACKAGES for cls in type(exc).__mro__)
