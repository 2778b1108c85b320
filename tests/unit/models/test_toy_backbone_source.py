"""A backbone source defined and registered in this file alone: ``toy:NAME``, a tiny random BERT
written under a folder of the test's on first use. A pipeline names it as it names any backbone;
the run's preflight, ``base_variant`` and the loaders take it through the registry; a backbone
string whose prefix no source registered is refused in one line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertModel

from muppet_core.config import PipelineConfig
from muppet_core.errors import BackboneError, ConfigError
from muppet_core.families import get_family
from muppet_core.families.build import build_multitask_model
from muppet_core.families.classification import ClassificationRecord
from muppet_core.models.backbone import base_variant, default_pooling, load_encoder
from muppet_core.models.sources import SOURCES, BackboneSource, backbone_fingerprint, resolve_backbone
from muppet_core.pipelines import check_backbones
from muppet_core.tasks.catalog import get_task


class ToySource(BackboneSource):
    """``toy:NAME``: a random 2-layer BERT (hidden 32, seeded by the name's length) with ``tokenizer``'s
    tokenizer, written to ``root/NAME`` when first asked for."""

    prefix = "toy"

    def __init__(self, root: Path, tokenizer: str) -> None:
        self.root, self.tokenizer = root, tokenizer

    def problem(self, spec: str) -> str | None:
        return None if re.fullmatch(r"[a-z0-9-]+", self.rest(spec)) else f"'{self.rest(spec)}' is not a toy name"

    def resolve(self, spec: str, cache_dir: Path) -> str:
        path = self.root / self.rest(spec)
        if not path.is_dir():
            torch.manual_seed(len(self.rest(spec)))
            config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
            BertModel(config).save_pretrained(path, safe_serialization=True)
            AutoTokenizer.from_pretrained(self.tokenizer).save_pretrained(path)
        return str(path)


@pytest.fixture
def toy(tmp_path, minilm_path):
    """The toy source, registered for the test only."""
    source = ToySource(tmp_path / "toys", minilm_path)
    SOURCES.register_object("toy", source)
    try:
        yield source
    finally:
        SOURCES.unregister("toy")


def pipeline(backbone: str) -> PipelineConfig:
    """A pipeline whose backbone is ``backbone``, as pipelines.yaml would give it."""
    return PipelineConfig.model_validate({"backbone": backbone, "prefinetune": {"tasks": ["rte"], "steps": 1}, "finetune": {"benchmarks": ["rte"]}})


def test_a_registered_source_passes_the_preflight_and_its_backbone_trains_a_head(toy, tmp_path):
    config = pipeline("toy:tiny")
    assert config.backbone == "toy:tiny"
    check_backbones(config, "demo")  # nothing fetched yet
    assert not (tmp_path / "toys").exists()

    base = base_variant(config.backbone, tmp_path / "cache")
    assert base.encoder_path == str(tmp_path / "toys" / "tiny") == resolve_backbone("toy:tiny", tmp_path / "cache")
    assert base.label == "tiny" and base.backbone == "toy:tiny"

    encoder, tok = load_encoder(base.encoder_path)
    rte = get_task("rte")
    model = build_multitask_model(encoder, [rte], default_pooling(base.encoder_path))
    family = get_family("classification").for_task(rte)
    features, _ = family.encode([ClassificationRecord("a cat", "an animal", 0), ClassificationRecord("rain", "dry weather", 1)], tok, 32)
    batch = family.collate(features, tok.pad_token_id)
    logits = model("rte", family, batch)
    assert logits.shape == (2, 2) and torch.isfinite(logits).all()
    family.loss(logits, batch["labels"]).backward()
    assert encoder.embeddings.word_embeddings.weight.grad is not None


def test_an_unknown_source_is_refused_in_one_line(toy, tmp_path):
    refusal = "'toi:tiny' names an unknown backbone source 'toi:' (did you mean 'toy:'?); known prefixes: package:, toy:"
    for attempt in (lambda: resolve_backbone("toi:tiny", tmp_path), lambda: base_variant("toi:tiny", tmp_path)):
        with pytest.raises(BackboneError) as refused:
            attempt()
        assert str(refused.value) == refusal
    with pytest.raises(ConfigError) as preflight:
        check_backbones(pipeline("toi:tiny"), "demo")
    assert preflight.value.problems == [f"pipelines.demo.backbone: {refusal}"]
    with pytest.raises(ConfigError) as bad_name:
        check_backbones(pipeline("toy:Tiny Toy"), "demo")
    assert bad_name.value.problems == ["pipelines.demo.backbone: 'Tiny Toy' is not a toy name"]

    SOURCES.unregister("toy")
    try:
        with pytest.raises(BackboneError, match=r"^'toy:tiny' names an unknown backbone source 'toy:'; known prefixes: package:$"):
            resolve_backbone("toy:tiny", tmp_path)
    finally:
        SOURCES.register_object("toy", toy)


def test_editing_a_plugin_sources_code_makes_a_new_backbone_key(tmp_path, minilm_path, monkeypatch):
    """The source's code is part of the base backbone's key (as a plugin family's is of its stages'):
    the same weights through an edited source are a new key, so nothing computed with the old code is reused."""
    from muppet_core.artifacts.fingerprints import code_version

    plugin = tmp_path / "plugins" / "edited_toy_source.py"
    plugin.parent.mkdir()
    plugin.write_text("from tests.unit.models.test_toy_backbone_source import ToySource\n\n\nclass EditedToy(ToySource):\n    pass\n")
    monkeypatch.syspath_prepend(str(plugin.parent))
    import edited_toy_source

    SOURCES.register_object("toy", edited_toy_source.EditedToy(tmp_path / "toys", minilm_path))
    try:
        first = base_variant("toy:tiny", tmp_path / "cache")
        again = base_variant("toy:tiny", tmp_path / "cache")
        plugin.write_text(plugin.read_text() + "    # edited: same weights, other code\n")
        code_version.cache_clear()  # a new process reads the edited file
        edited = base_variant("toy:tiny", tmp_path / "cache")
    finally:
        SOURCES.unregister("toy")
        code_version.cache_clear()
    assert first.encoder_path == edited.encoder_path and backbone_fingerprint(first.encoder_path) == backbone_fingerprint(edited.encoder_path)
    assert first.key == again.key != edited.key
    assert first.key != backbone_fingerprint(first.encoder_path)
