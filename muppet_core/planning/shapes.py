"""A backbone's shape (layers, hidden size, parameters) from its config.json, read without loading or downloading
weights: a local backbone's own file, the hub's file in this machine's cache, else ``shapes.yaml``'s copy."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from muppet_core.models.sources import PackageSource, PathSource, source_of
from muppet_core.yamlfile import load_yaml

KNOWN = load_yaml(Path(__file__).with_name("shapes.yaml"))


@dataclass(frozen=True)
class Shape:
    """What the FLOPs and memory formulas need of a backbone.

    Attributes:
        layers: transformer layers (encoder and decoder together for a seq2seq model).
        hidden: hidden size.
        heads: attention heads.
        vocab: vocabulary size.
        layer_params: parameters of the layer stack (N of the FLOPs formula).
        embedding_params: parameters of the embedding tables.
        seq2seq: an encoder-decoder model (BART-style).
        source: where the config came from, in words.
    """

    layers: int
    hidden: int
    heads: int
    vocab: int
    layer_params: int
    embedding_params: int
    seq2seq: bool
    source: str

    @property
    def params(self) -> int:
        """Every parameter of the backbone."""
        return self.layer_params + self.embedding_params


def shape_of(config: dict, source: str) -> Shape:
    """The shape of a BERT/RoBERTa-style encoder or a BART- or T5-style encoder-decoder config.

    A layer holds attention (4 H^2 + 4 H), its feed-forward (2 H I + I + H) and two LayerNorms (4 H); a decoder
    layer adds cross-attention and its LayerNorm (4 H^2 + 6 H)."""
    if "d_ff" in config and "num_layers" in config:  # T5-style: no biases, RMS norms, attention width heads x d_kv
        hidden, inner, ffn = config["d_model"], config["num_heads"] * config["d_kv"], config["d_ff"]
        enc, dec = config["num_layers"], config.get("num_decoder_layers") or config["num_layers"]
        matrices = 3 if str(config.get("feed_forward_proj", "relu")).startswith("gated") else 2
        layer = 4 * hidden * inner + matrices * hidden * ffn + 2 * hidden
        layer_params = enc * layer + dec * (layer + 4 * hidden * inner + hidden)
        return Shape(enc + dec, hidden, config["num_heads"], config["vocab_size"], layer_params, config["vocab_size"] * hidden, True, source)
    if "d_model" in config:  # BART-style
        hidden, ffn = config["d_model"], config.get("encoder_ffn_dim", 4 * config["d_model"])
        enc, dec = config["encoder_layers"], config["decoder_layers"]
        layer = 4 * hidden**2 + 2 * hidden * ffn + 9 * hidden + ffn
        layer_params = enc * layer + dec * (layer + 4 * hidden**2 + 6 * hidden)
        positions = 2 * config.get("max_position_embeddings", 1024) * hidden
        return Shape(enc + dec, hidden, config.get("encoder_attention_heads", hidden // 64), config["vocab_size"], layer_params,
                     config["vocab_size"] * hidden + positions, True, source)
    hidden, ffn, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    layer_params = layers * (4 * hidden**2 + 2 * hidden * ffn + 9 * hidden + ffn)
    embedding = (config["vocab_size"] + config.get("max_position_embeddings", 512) + config.get("type_vocab_size", 1)) * hidden
    return Shape(layers, hidden, config.get("num_attention_heads", hidden // 64), config["vocab_size"], layer_params, embedding, False, source)


def backbone_shape(spec: str) -> tuple[Shape | None, str]:
    """The backbone's shape and where it came from, or None and why it is unknown."""
    source = source_of(spec)
    if isinstance(source, (PackageSource, PathSource)) and source.problem(spec) is None:
        path = Path(source.resolve(spec, Path("."))) / "config.json"
        return shape_of(json.loads(path.read_text()), str(path)), str(path)
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(spec, "config.json")
    except Exception:  # not a hub id the cache can name
        cached = None
    if isinstance(cached, str):
        return shape_of(json.loads(Path(cached).read_text()), cached), f"{cached} (the hub's, cached)"
    if spec in KNOWN:
        where = f"muppet_core/planning/shapes.yaml (the hub's config.json of {spec}; not in this machine's cache)"
        return shape_of(KNOWN[spec], where), where
    return None, f"no config.json for '{spec}' on this machine (a remote backbone's is read only when the run fetches it)"
