"""The tiny random BERT that `make smoke-backbone` writes for the smoke pipeline (and the tests use)."""

from __future__ import annotations

from pathlib import Path

from muppet_core.models.backbone import load_encoder, load_tokenizer
from muppet_core.models.tiny import save_tiny_bert
from muppet_core.pipelines import load_pipeline
from tests.conftest import REPO


def test_the_smoke_backbone_is_a_2_layer_bert_that_reads_words_with_minilm_s_tokenizer(tmp_path, minilm_path):
    encoder, tokenizer = load_encoder(save_tiny_bert(tmp_path / "tiny"))
    assert (encoder.config.num_hidden_layers, encoder.config.hidden_size) == (2, 32)
    assert tokenizer.get_vocab() == load_tokenizer(minilm_path).get_vocab()
    ids = tokenizer("The movie was surprisingly good.")["input_ids"]
    assert tokenizer.unk_token_id not in ids and encoder.config.vocab_size > max(ids)
    save_tiny_bert(tmp_path / "again")
    assert (tmp_path / "again" / "model.safetensors").read_bytes() == (tmp_path / "tiny" / "model.safetensors").read_bytes()


def test_the_smoke_pipeline_reads_its_backbone_where_make_smoke_backbone_writes_it():
    recipe = (REPO / "Makefile").read_text().split("\nsmoke-backbone:", 1)[1].split("\n\n", 1)[0]
    assert 'save_tiny_bert("build/smoke-backbone")' in recipe
    for name in ("smoke", "smoke-workers"):
        assert load_pipeline(name, REPO / "pipelines.yaml").backbone == str(REPO / "build" / "smoke-backbone")
    assert Path(REPO / ".gitignore").read_text().splitlines().count("build/") == 1  # never committed
