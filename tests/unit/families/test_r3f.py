"""R3F: the penalty is KL(p || q) + KL(q || p) per example, its noise is uniform in [-eps, eps] or
normal N(0, eps^2) as configured, and summarization's penalty compares the decoder's token distributions."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from muppet_core.config import Optimization
from muppet_core.families import base, get_family
from muppet_core.families.build import build_multitask_model
from muppet_core.families.classification import ClassificationRecord
from muppet_core.families.summarization import SummarizationRecord
from muppet_core.models.backbone import load_encoder
from muppet_core.models.kinds import SEQ2SEQ
from muppet_core.tasks.catalog import get_task
from muppet_core.training.loop import TaskStream, train
from muppet_core.training.settings import LoopSettings

EPS = 0.05


def _kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """[N] KL(p || q) of each row's softmaxes, from the definition."""
    log_p, log_q = F.log_softmax(p_logits.double(), -1), F.log_softmax(q_logits.double(), -1)
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def test_the_penalty_is_the_sum_of_both_kl_directions_averaged_over_examples():
    g = torch.Generator().manual_seed(0)
    p_logits, q_logits = torch.randn(6, 4, generator=g) * 2, torch.randn(6, 4, generator=g) * 2
    expected = float((_kl(p_logits, q_logits) + _kl(q_logits, p_logits)).mean())
    assert expected > 0.1
    assert float(base.symmetric_kl(p_logits, q_logits)) == pytest.approx(expected, rel=1e-5)
    assert float(get_family("classification").divergence(p_logits, q_logits, {})) == pytest.approx(expected, rel=1e-5)
    assert float(base.symmetric_kl(p_logits, p_logits)) == pytest.approx(0.0, abs=1e-6)


def test_uniform_noise_stays_within_eps_and_normal_noise_has_eps_as_its_deviation():
    torch.manual_seed(0)
    like = torch.zeros(200, 500)
    uniform = base.r3f_noise(like, EPS, "uniform")
    assert uniform.shape == like.shape and float(uniform.abs().max()) <= EPS
    assert float(uniform.abs().max()) > 0.99 * EPS and float(uniform.mean()) == pytest.approx(0.0, abs=EPS / 100)
    assert float(uniform.std()) == pytest.approx(EPS / math.sqrt(3), rel=0.02)
    normal = base.r3f_noise(like, EPS, "normal")
    assert float(normal.std()) == pytest.approx(EPS, rel=0.02) and float(normal.mean()) == pytest.approx(0.0, abs=EPS / 100)
    assert float((normal.abs() > EPS).double().mean()) == pytest.approx(math.erfc(1 / math.sqrt(2)), abs=0.01)  # 31.7% beyond 1 sigma
    with pytest.raises(ValueError, match="unknown R3F noise"):
        base.r3f_noise(like, EPS, "laplace")


def test_the_configured_noise_reaches_the_training_loop(tiny_backbone, monkeypatch):
    assert Optimization().r3f_noise == "uniform"
    with pytest.raises(ValidationError):
        Optimization(r3f_noise="laplace")
    drawn = []
    real = base.r3f_noise
    monkeypatch.setattr(base, "r3f_noise", lambda like, eps, kind: drawn.append((eps, kind)) or real(like, eps, kind))
    spec = get_task("rte")
    family = get_family(spec.family).for_task(spec)
    torch.manual_seed(0)
    encoder, tok = load_encoder(tiny_backbone)
    model = build_multitask_model(encoder, [spec])
    records = [ClassificationRecord(f"a text about {w}", f"{w} again", i % 2) for i, w in enumerate(["cats", "dogs", "rain", "tea"])]
    features, _ = family.encode(records, tok, 32)
    for noise in ("normal", "uniform"):
        drawn.clear()
        optim = Optimization(warmup_ratio=0.0, r3f_eps=1e-3, r3f_noise=noise, checkpoint_every=None)
        settings = LoopSettings(optim, steps=2, tasks_per_step=1, micro_batch_size=4, learning_rate=1e-3, seed=0)
        train(model, {"rte": TaskStream(family, family.head_name(spec), features, 1.0)}, settings, tok.pad_token_id)
        assert drawn == [(1e-3, noise)] * 2


def _noisy_decoder_logits(model, head: str, batch: dict[str, torch.Tensor], embeds: torch.Tensor) -> torch.Tensor:
    """[B, T, V] decoder logits, straight from the Hugging Face modules, with the encoder reading ``embeds``
    and the decoder the batch's clean ``decoder_input_ids``."""
    mask, dec_ids, dec_mask = batch["attention_mask"], batch["decoder_input_ids"], batch["decoder_attention_mask"]
    if model.kind is not SEQ2SEQ:  # an encoder and the decoder warm-started from it
        hidden = model.encoder(inputs_embeds=embeds, attention_mask=mask, token_type_ids=batch["token_type_ids"]).last_hidden_state
        return model.heads[head].decoder(input_ids=dec_ids, attention_mask=dec_mask, encoder_hidden_states=hidden,
                                         encoder_attention_mask=mask).logits
    lm = model.encoder  # BART: </s> goes before the features' <s>, and its position is left out
    start = torch.full_like(dec_ids[:, :1], lm.config.decoder_start_token_id)
    return lm(inputs_embeds=embeds, attention_mask=mask, decoder_input_ids=torch.cat([start, dec_ids], 1),
              decoder_attention_mask=torch.cat([torch.ones_like(start), dec_mask], 1)).logits[:, 1:]


@pytest.mark.parametrize("backbone", ["tiny_backbone", "tiny_bart"])
def test_summarization_penalty_is_the_symmetric_kl_of_the_decoders_real_target_tokens(backbone, request, monkeypatch):
    spec = get_task("xsum")
    family = get_family(spec.family).for_task(spec)
    path = request.getfixturevalue(backbone)
    torch.manual_seed(0)
    encoder, tok = load_encoder(path)
    model = build_multitask_model(encoder, [spec], "cls" if backbone == "tiny_backbone" else "eos")
    head = family.head_name(spec)
    records = [SummarizationRecord("The council met on Monday and agreed a new budget for the town's parks.", "Parks get a budget."),
               SummarizationRecord("Heavy rain closed two roads.", "Rain closed roads in the north of the county on Tuesday.")]
    features, _ = family.encode(records, tok, 64, 16)
    batch = family.collate(features, tok.pad_token_id)
    real = batch["labels"] != base.IGNORE_INDEX
    assert not real.all()  # the shorter summary is padded
    embeds = model.encoder.get_input_embeddings()(batch["input_ids"])
    noise = [torch.randn(embeds.shape, generator=torch.Generator().manual_seed(1)) * EPS]
    monkeypatch.setattr(base, "r3f_noise", lambda like, eps, kind: noise[0], raising=False)
    model.eval()  # no dropout: the passes differ by the noise alone
    with torch.no_grad():
        clean = model(head, family, batch)
        noisy = _noisy_decoder_logits(model, head, batch, embeds + noise[0])
        term = family.r3f(model, head, batch, clean, EPS)
        noise[0] = torch.zeros_like(embeds)
        silent = family.r3f(model, head, batch, clean, EPS)
    expected = float((_kl(clean[real], noisy[real]) + _kl(noisy[real], clean[real])).sum() / real.sum())
    assert expected > 1e-8 and abs(float(silent)) < expected / 1000  # a tiny random decoder moves little, but the noise moves it
    assert float(term) == pytest.approx(expected, rel=1e-3)
