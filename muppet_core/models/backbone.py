"""Backbone loading: the tokenizer, the model (as its kind loads it, ``muppet_core.models.kinds``)
and its default pooling, from the local directory its source resolved (``muppet_core.models.sources``).

Weights are loaded from safetensors only: pickled checkpoints (``pytorch_model.bin``) are refused
before anything reads them, since unpickling can run arbitrary code, and no model code from the
backbone's folder or repository is ever run (``trust_remote_code=False``).
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

# Imported here, once, rather than inside the loaders: transformers resolves these names lazily,
# and that first resolution is not safe when several data or fine-tune tasks load at once.
from transformers import AutoTokenizer
from transformers.utils import logging as hf_logging

from muppet_core.artifacts.fingerprints import code_version, digest
from muppet_core.errors import BackboneError, first_line
from muppet_core.models.kinds import backbone_config, kind_of
from muppet_core.models.labels import backbone_label
from muppet_core.models.sources import source_of

log = logging.getLogger(__name__)
# One load at a time in a process: transformers ties a seq2seq model's shared embeddings (BART's)
# after loading, and two threads loading at once leave the tied weights on the meta device.
_LOAD_LOCK = threading.Lock()


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


def tokenizer_problem(resolved: str, tokenizer) -> str | None:
    """Why ``tokenizer`` is not the backbone's own, or None: it knows no token beyond its special ones,
    as the tokenizer transformers builds from config.json alone for a folder without tokenizer files
    (every word would read as unknown, and the run would still finish and publish scores)."""
    special = set(tokenizer.all_special_ids)
    if len(tokenizer) > len(special):
        return None
    return (f"{resolved} has no tokenizer of its own: its tokenizer knows only its {len(special)} special tokens (no tokenizer.json, "
            "vocab.txt, vocab.json or sentencepiece model in the folder); copy in the tokenizer files the model was trained with")


def max_positions(resolved: str, tokenizer) -> int | None:
    """The most tokens a sequence of the backbone may hold: its config's ``max_position_embeddings``
    (at most its tokenizer's ``model_max_length``, which counts a position offset such as RoBERTa's out),
    or None for a backbone without absolute positions (T5's are relative)."""
    positions = getattr(backbone_config(resolved), "max_position_embeddings", None)
    if not isinstance(positions, int):
        return None
    stated = tokenizer.model_max_length
    return min(positions, stated) if isinstance(stated, int) and 0 < stated < positions else positions


def fit_problems(resolved: str, max_lengths: dict[str, int]) -> list[tuple[str | None, str]]:
    """(setting, problem) for what the backbone in ``resolved`` cannot do before any work: a tokenizer
    that is not its own (setting None: the backbone itself), and each of ``max_lengths`` (setting ->
    tokens per sequence) beyond its positions (``max_positions``).

    Raises:
        BackboneError: its tokenizer or config cannot be loaded at all.
    """
    tokenizer = load_tokenizer(resolved)
    if problem := tokenizer_problem(resolved, tokenizer):
        return [(None, problem)]
    limit = max_positions(resolved, tokenizer)
    return [
        (setting, f"{length} tokens are more than backbone {resolved} has positions for ({limit}): set it to {limit} or less")
        for setting, length in max_lengths.items() if limit is not None and length > limit
    ]


def default_pooling(resolved: str) -> str:
    """The pooling a backbone was trained with: the one a model this project saved records beside
    its encoder; a sentence-transformers model's (``1_Pooling/config.json``: ``mean`` for
    all-MiniLM-L6-v2); otherwise its kind's (``cls`` for an encoder, as BERT, RoBERTa and the
    paper's heads read the first token; ``eos`` for a seq2seq backbone, its decoder's last
    end-of-sequence state, as BART's classification heads read)."""
    from muppet_core.models.multitask import POOLING_FILE

    saved = Path(resolved).parent / POOLING_FILE
    if saved.is_file():
        return saved.read_text().strip()
    pooling = Path(resolved) / "1_Pooling" / "config.json"
    if pooling.is_file() and json.loads(pooling.read_text()).get("pooling_mode_mean_tokens"):
        return "mean"
    return kind_of(backbone_config(resolved)).default_pooling


def load_encoder(resolved: str):
    """The backbone in the directory ``resolved`` as its kind loads it (an encoder's ``AutoModel``;
    a seq2seq backbone's whole ``AutoModelForSeq2SeqLM``), in train mode, and its fast tokenizer.

    Raises:
        BackboneError: when the weights or tokenizer cannot be loaded, or the weights are not safetensors.
    """
    hf_logging.disable_progress_bar()
    if not _has_safetensors(resolved):
        raise safetensors_required(resolved)
    tokenizer = load_tokenizer(resolved)
    kind = kind_of(backbone_config(resolved))
    with _LOAD_LOCK:
        encoder = kind.load(resolved)
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


_BUILT_IN = ("muppet_core.models.sources", "muppet_core.models.kinds")


def base_variant(spec: str, cache_dir: Path) -> Variant:
    """The pipeline's backbone as it is, before pre-finetuning: resolved by its source, keyed by the
    identity its source gives it (and, for a plugin's source or kind, by that plugin's code), and
    named as its source pins it (a hub id by the commit sha downloaded: ``org/name@<sha>``).

    Raises:
        BackboneError: no source claims ``spec``, or its source cannot fetch it.
    """
    source = source_of(spec)
    resolved = source.resolve(spec, cache_dir)
    key = source.identity(spec, resolved)
    # A plugin's source or kind is part of what the backbone is: editing its code is a new backbone key.
    plugins = sorted({type(o).__module__ for o in (source, kind_of(backbone_config(resolved)))} - set(_BUILT_IN))
    if plugins:
        key = digest({"backbone": key, "code": code_version(*plugins)})[: len(key)]
    return Variant("base", key, resolved, backbone=source.pinned(spec, resolved))
