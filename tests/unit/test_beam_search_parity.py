"""Summarization decoding against ``generate`` of Hugging Face transformers, token for token, on real
XSum rows: greedy and beam search (2, 3 and 4 beams) of the warm-started decoder (a tiny BERT) and of
the backbone's own decoder (tiny BART and T5), and no setting of a checkpoint's generation config
reaches the decoding."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import BertConfig, BertModel, EncoderDecoderModel, GenerationConfig

from muppet_core.data.prepare import load_split, prepare_task
from muppet_core.families import get_family
from muppet_core.families.build import build_multitask_model
from muppet_core.families.summarization import GENERATION_HEAD, decoder_start_id, decoder_stop_id
from muppet_core.models.backbone import load_encoder
from muppet_core.models.kinds import SEQ2SEQ
from muppet_core.tasks.catalog import get_task

TASK = "xsum"
ROWS = 6
BEAMS = (1, 2, 3, 4)
NEW_TOKENS = (3, 8, 20)
SPREAD = 0.3  # of the weight matrices, far from their init: outputs that differ by document and are not uniform
# Everything that steers ``generate`` besides the beams, at the value that turns it off.
NEUTRAL = {"do_sample": False, "length_penalty": 1.0, "early_stopping": False, "no_repeat_ngram_size": 0, "min_length": 0,
           "repetition_penalty": 1.0, "forced_bos_token_id": None, "forced_eos_token_id": None, "num_return_sequences": 1}


@pytest.fixture(scope="module")
def records(mirror, tmp_path_factory):
    spec = get_task(TASK)
    root = tmp_path_factory.mktemp(TASK)
    prepare_task(spec, mirror, 0.1, 0, root)
    return load_split(root, spec.family, "validation")[:ROWS]


@pytest.fixture(scope="module")
def tiny_bert_small(tmp_path_factory, mirror) -> str:
    """A tiny random BERT with the small BART-style tokenizer of ``tests.tiny_seq2seq`` (vocabulary 1000)."""
    from tests.tiny_seq2seq import _texts, bart_tokenizer

    tokenizer = bart_tokenizer(_texts(mirror))
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-bert-small")
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=256, pad_token_id=tokenizer.pad_token_id)
    BertModel(config).save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module", params=["bert", "bart", "t5"])
def backbone(request) -> str:
    return request.getfixturevalue({"bert": "tiny_bert_small", "bart": "tiny_bart", "t5": "tiny_t5"}[request.param])


def _setup(backbone: str, records):
    torch.manual_seed(0)
    encoder, tokenizer = load_encoder(backbone)
    spec = get_task(TASK)
    model = build_multitask_model(encoder, [spec]).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, SPREAD)
    family = get_family(spec.family).for_task(spec)
    features, _ = family.encode(records, tokenizer, 64, 16)
    return model, tokenizer, family, features, family.collate(features, tokenizer.pad_token_id)


def _ends_often(module: torch.nn.Module, stop_id: int):
    """Puts the stop token's logit at every step a little above the second best of the others', so that
    hypotheses end at many ranks of the beams' candidates (at the first one where the best two are close)."""

    def hook(_module, _inputs, logits):
        others = logits.clone()
        others[..., stop_id] = float("-inf")
        best = others.topk(3, -1).values
        logits = logits.clone()
        logits[..., stop_id] = 1.5 * best[..., 1] - 0.5 * best[..., 2]
        return logits

    return module.register_forward_hook(hook)


def _cut(rows: list[list[int]], stop_id: int) -> list[list[int]]:
    return [row[: row.index(stop_id)] if stop_id in row else row for row in rows]


class _Reference:
    """``generate`` of Hugging Face on a copy of the model's summarization network, every setting passed
    explicitly and its generation config reset to the library's defaults (``generate`` fills a setting
    passed as None, such as a forced token, from the model's own)."""

    def __init__(self, model, batch, tokenizer):
        self.start, self.stop, self.pad = decoder_start_id(tokenizer), decoder_stop_id(tokenizer), tokenizer.pad_token_id
        prompt = torch.full((len(batch["input_ids"]), 1), self.start)
        if model.kind is SEQ2SEQ:
            self.lm = copy.deepcopy(model.encoder)
            prompt = model.heads[GENERATION_HEAD]._prefix(self.lm, prompt)
        else:  # the warm-started decoder over the encoder, paired as Hugging Face pairs them
            assert "token_type_ids" not in batch  # the pair's encoder reads the ids and the mask alone
            self.lm = EncoderDecoderModel(encoder=copy.deepcopy(model.encoder), decoder=copy.deepcopy(model.heads[GENERATION_HEAD].decoder))
        self.lm.eval()
        self.lm.generation_config = GenerationConfig()
        self.inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "decoder_input_ids": prompt}

    def __call__(self, num_beams: int, max_new_tokens: int) -> list[list[int]]:
        prompt = self.inputs["decoder_input_ids"]
        with torch.no_grad():
            out = self.lm.generate(**self.inputs, num_beams=num_beams, max_new_tokens=max_new_tokens, eos_token_id=self.stop,
                                   pad_token_id=self.pad, decoder_start_token_id=int(prompt[0, 0]), **NEUTRAL)
        return _cut(out[:, prompt.shape[1] :].tolist(), self.stop)


def _decoder_output(model) -> torch.nn.Module:
    """The summarization network's output projection (to the vocabulary)."""
    return (model.encoder if model.kind is SEQ2SEQ else model.heads[GENERATION_HEAD].decoder).get_output_embeddings()


def test_decoding_matches_generate_token_for_token(backbone, records):
    model, tok, family, features, batch = _setup(backbone, records)
    reference = _Reference(model, batch, tok)
    _ends_often(_decoder_output(model), reference.stop)
    _ends_often(reference.lm.get_output_embeddings(), reference.stop)
    lengths = set()
    for num_beams in BEAMS:
        for max_new_tokens in NEW_TOKENS:
            ours = family.generate(model, GENERATION_HEAD, batch, reference.start, reference.stop, max_new_tokens, num_beams)
            theirs = reference(num_beams, max_new_tokens)
            assert ours == theirs, (num_beams, max_new_tokens)
            lengths |= {(num_beams, len(row) < max_new_tokens) for row in theirs}
    assert lengths == {(k, ended) for k in BEAMS for ended in (False, True)}  # every search ends some rows early, not all
    texts = family.predict(model, GENERATION_HEAD, features, tok.pad_token_id, tokenizer=tok, max_new_tokens=8, num_beams=3)
    assert texts == [tok.decode(row, skip_special_tokens=True).strip() for row in reference(3, 8)]


def _repeats_a_trigram(row: list[int]) -> bool:
    trigrams = [tuple(row[i : i + 3]) for i in range(len(row) - 2)]
    return len(set(trigrams)) < len(trigrams)


@pytest.mark.parametrize("seq2seq", ["tiny_bart", "tiny_t5"])
def test_the_checkpoints_generation_config_plays_no_part(request, seq2seq, records):
    model, tok, family, features, batch = _setup(request.getfixturevalue(seq2seq), records)
    start, stop = decoder_start_id(tok), decoder_stop_id(tok)
    plain = {k: family.generate(model, GENERATION_HEAD, batch, start, stop, 20, k) for k in (1, 3)}
    assert all(any(map(_repeats_a_trigram, rows)) for rows in plain.values())  # the setting below would change them
    model.encoder.generation_config.no_repeat_ngram_size = 3
    for k, rows in plain.items():
        assert family.generate(model, GENERATION_HEAD, batch, start, stop, 20, k) == rows, k
