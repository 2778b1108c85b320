"""Seq2seq backbones (tiny random BART and T5): heads read the decoder, summarization uses the
backbone's own decoder, R3F noises the shared embedding, and the model exports and loads back."""

from __future__ import annotations

import pytest
import torch
from transformers.models.bart.modeling_bart import shift_tokens_right

from muppet_core.config import Mixing, Optimization
from muppet_core.data.prepare import load_split, prepare_task
from muppet_core.families import get_family
from muppet_core.families.build import build_multitask_model
from muppet_core.models.backbone import default_pooling, load_encoder
from muppet_core.models.heads import DecoderHead
from muppet_core.models.seq2seq import OwnDecoderHead
from muppet_core.tasks.catalog import get_task
from muppet_core.training.evaluate import evaluate
from muppet_core.training.loop import TaskStream, train
from muppet_core.training.settings import LoopSettings

TASKS = ["rte", "commonsenseqa", "squad", "xsum"]  # classification, multiple choice, span, summarization


@pytest.fixture(scope="module", params=["bart", "t5"])
def backbone(request) -> str:
    return request.getfixturevalue(f"tiny_{request.param}")


@pytest.fixture(scope="module")
def data(mirror, tmp_path_factory):
    """Real records of ``TASKS``: task -> (train, validation)."""
    out = {}
    for task in TASKS:
        spec = get_task(task)
        root = tmp_path_factory.mktemp(task)
        prepare_task(spec, mirror, 0.1, 0, root)
        out[task] = (load_split(root, spec.family, "train")[:16], load_split(root, spec.family, "validation")[:6])
    return out


def _model(backbone: str, tasks=TASKS, seed: int = 0):
    torch.manual_seed(seed)
    encoder, tokenizer = load_encoder(backbone)
    return build_multitask_model(encoder, [get_task(t) for t in tasks], default_pooling(backbone)), tokenizer


def _batch(task: str, records, tokenizer, max_length: int = 64):
    spec = get_task(task)
    family = get_family(spec.family).for_task(spec)
    features, _ = family.encode(records, tokenizer, max_length, 16)
    return family, family.head_name(spec), features, family.collate(features, tokenizer.pad_token_id)


def _reference_decoder_states(lm, input_ids: list[int]) -> torch.Tensor:
    """The backbone's own forward on one unpadded row, its decoder reading the row shifted right by
    the model's own shift (BART's ``shift_tokens_right``, T5's ``_shift_right``): [L, H]."""
    ids = torch.tensor([input_ids])
    if hasattr(lm, "_shift_right"):
        decoder_ids = lm._shift_right(ids)
    else:
        decoder_ids = shift_tokens_right(ids, lm.config.pad_token_id, lm.config.decoder_start_token_id)
    out = lm(input_ids=ids, decoder_input_ids=decoder_ids, output_hidden_states=True)
    return out.decoder_hidden_states[-1][0]


def test_a_seq2seq_backbone_loads_whole_and_pools_at_eos(backbone):
    encoder, _ = load_encoder(backbone)
    assert encoder.config.is_encoder_decoder and type(encoder).__name__.endswith("ForConditionalGeneration")
    assert default_pooling(backbone) == "eos"


def test_eos_pooling_reads_the_decoder_state_at_the_last_eos_of_real_rows(backbone, data):
    model, tok = _model(backbone)
    model.eval()
    family, head, features, batch = _batch("rte", data["rte"][1], tok, max_length=200)
    assert batch["attention_mask"].sum(1).unique().numel() > 1  # rows of several lengths, padded
    with torch.no_grad():
        pooled = model.pool(model.encode(batch), batch)
        logits = model(head, family, batch)
        for row, feature in enumerate(features):
            ids = feature["input_ids"]
            eos = [i for i, t in enumerate(ids) if t == tok.eos_token_id]
            assert len(eos) >= 2 and eos[-1] == len(ids) - 1  # a pair: its segments' ends, the last at the row's end
            expected = _reference_decoder_states(model.encoder, ids)[eos[-1]]
            torch.testing.assert_close(pooled[row], expected, atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(logits[row], model.heads[head](expected), atol=1e-5, rtol=1e-4)


def test_span_logits_are_the_decoder_states_per_token(backbone, data):
    model, tok = _model(backbone)
    model.eval()
    family, head, features, _ = _batch("squad", data["squad"][1][:2], tok)
    features = features[:4]  # a long context's windows
    batch = family.collate(features, tok.pad_token_id)
    with torch.no_grad():
        start, end = model(head, family, batch)
        for row, feature in enumerate(features):
            n = len(feature["input_ids"])
            expected = model.heads[head](_reference_decoder_states(model.encoder, feature["input_ids"]))
            torch.testing.assert_close(start[row, :n], expected[:, 0], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(end[row, :n], expected[:, 1], atol=1e-5, rtol=1e-4)


def test_summarization_is_the_backbones_own_decoder(backbone, data):
    model, tok = _model(backbone)
    model.eval()
    lm = model.encoder
    head = model.heads["generation"]
    assert isinstance(head, OwnDecoderHead) and not list(head.parameters())  # no second decoder
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in lm.parameters()) + sum(
        p.numel() for name, h in model.heads.items() for p in h.parameters())
    family, head_name, features, batch = _batch("xsum", data["xsum"][1][:4], tok)
    # The backbone's own seq2seq loss convention: the labels are the whole tokenized summary, which the
    # model shifts right behind its decoder start (BART: </s> <s> ..., T5: <pad> ...).
    lead = int(tok.bos_token_id is not None)  # BART's <s>, which our features start the decoder with
    full = tok([r.summary for r in data["xsum"][1][:4]], truncation=True, max_length=16 + lead)["input_ids"]
    assert [row[lead:] for row in full] == [f["labels"] for f in features]
    width = max(map(len, full))
    labels = torch.tensor([row + [-100] * (width - len(row)) for row in full])
    with torch.no_grad():
        ours = model(head_name, family, batch)
        theirs = lm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels).logits[:, lead:]
    mask = batch["labels"] != -100
    torch.testing.assert_close(ours[mask], theirs[:, : ours.shape[1]][mask], atol=1e-5, rtol=1e-4)


def test_greedy_and_beam_decoding(backbone, data):
    model, tok = _model(backbone)
    model.eval()
    family, head, features, batch = _batch("xsum", data["xsum"][1][:3], tok)
    lm, start = model.encoder, features[0]["decoder_input_ids"][0]
    with torch.no_grad():  # greedy by hand: the whole prefix recomputed each step, from the decoder's own start
        seq = torch.tensor([[lm.config.decoder_start_token_id]] * 3)
        if start != lm.config.decoder_start_token_id:
            seq = torch.cat([seq, torch.full((3, 1), start)], 1)
        prefix = seq.shape[1]
        for _ in range(6):
            logits = lm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], decoder_input_ids=seq).logits
            seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], 1)
    expected = seq[:, prefix:].tolist()
    never = next(t for t in range(len(tok)) if all(t not in row for row in expected))
    assert family.generate(model, head, batch, start, never, 6) == expected
    beams = family.generate(model, head, batch, start, never, 7, num_beams=3)
    assert [len(row) for row in beams] == [7, 7, 7]
    texts = family.predict(model, head, features, tok.pad_token_id, tokenizer=tok, max_new_tokens=7, num_beams=3)
    assert texts == [tok.decode(row, skip_special_tokens=True).strip() for row in beams]


def test_the_warm_started_decoders_beam_search_is_exact_when_it_keeps_every_hypothesis():
    """On a 6-token vocabulary, 3 new tokens and beams enough for every prefix, beam search must return
    the best of all sequences, scored here one by one: log-probability per generated token."""
    import itertools

    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    encoder = BertModel(BertConfig(vocab_size=6, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32))
    head = DecoderHead(encoder).eval()
    with torch.no_grad():  # weights far from their init, so that the best sequence is not always the greedy one
        for p in head.parameters():
            p.normal_(0, 0.4)
    start, stop, steps = 1, 2, 3
    mask = torch.ones(1, 5, dtype=torch.long)
    candidates = [s for n in range(1, steps + 1) for s in itertools.product(range(6), repeat=n)
                  if stop not in s[:-1] and (s[-1] == stop or n == steps)]
    beat_greedy = 0
    for _ in range(8):  # encoder states
        hidden = torch.randn(1, 5, 16)
        scores = {}
        for n in range(1, steps + 1):  # every candidate of n tokens in one forward
            group = [c for c in candidates if len(c) == n]
            seqs = torch.tensor([[start, *c] for c in group])
            with torch.no_grad():
                logp = head(seqs, torch.ones_like(seqs), hidden.expand(len(group), -1, -1), mask.expand(len(group), -1))[:, :-1].log_softmax(-1)
            picked = logp.gather(2, seqs[:, 1:].unsqueeze(2)).squeeze(2).sum(1) / n
            scores.update(zip(group, picked.tolist()))
        best = max(candidates, key=scores.get)
        assert head.beam_search(hidden, mask, start, stop, steps, num_beams=6**steps) == [[t for t in best if t != stop]]
        greedy = tuple(head.generate(hidden, mask, start, stop, steps)[0])
        beat_greedy += best != (greedy + ((stop,) if len(greedy) < steps else ()))
    assert beat_greedy  # the check tells a search from greedy decoding


def test_r3f_noises_the_shared_embedding(backbone, data):
    model, tok = _model(backbone)
    lm = model.encoder
    assert lm.get_input_embeddings().weight is lm.get_encoder().embed_tokens.weight  # one matrix, shared
    for task in ("rte", "commonsenseqa", "squad"):
        family, head, _, batch = _batch(task, data[task][1][:4], tok)
        model.eval()
        with torch.no_grad():  # no noise, no dropout: the noised pass is the clean one
            assert float(family.r3f(model, head, batch, model(head, family, batch), 0.0)) == pytest.approx(0.0, abs=1e-6)
        model.train()
        lm.zero_grad()
        clean = model(head, family, batch)
        clean = tuple(x.detach() for x in clean) if isinstance(clean, tuple) else clean.detach()
        term = family.r3f(model, head, batch, clean, 1e-2)
        term.backward()
        grad = lm.get_input_embeddings().weight.grad
        assert float(term) > 0 and grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_every_family_trains_with_r3f_and_scores(backbone, data):
    model, tok = _model(backbone)
    streams = {}
    for task in TASKS:
        spec = get_task(task)
        family = get_family(spec.family).for_task(spec)
        features, _ = family.encode(data[task][0][:4] if task == "squad" else data[task][0], tok, 64, 16)
        streams[task] = TaskStream(family, family.head_name(spec), features, spec.loss_scale(64, tok.vocab_size))
    optim = Optimization(warmup_ratio=0.0, r3f_eps=1e-5, checkpoint_every=None)
    settings = LoopSettings(optim, steps=4, tasks_per_step=1, micro_batch_size=4, learning_rate=1e-3, seed=0,  # a task an update
                            mixing=Mixing(schedule="dataset_homogeneous", sampling="uniform"))
    summary = train(model, streams, settings, tok.pad_token_id)
    assert summary["examples_per_task"] == {t: 4 for t in TASKS}
    assert all(torch.isfinite(p).all() for p in model.parameters())
    for task in TASKS:
        spec = get_task(task)
        family = get_family(spec.family).for_task(spec)
        features, _ = family.encode(data[task][1], tok, 64)
        metrics = evaluate(model, family.head_name(spec), spec, features, tok.pad_token_id, tokenizer=tok, max_new_tokens=8, num_beams=2)
        assert set(metrics) == {spec.metric, *spec.secondary_metrics}
        assert all(0.0 <= v <= 1.0 for v in metrics.values()), metrics


def test_export_loads_back_for_fine_tuning(backbone, data, tmp_path):
    model, tok = _model(backbone, ["rte", "xsum"])
    model.eval()
    model.save(tmp_path, tok)
    assert (tmp_path / "encoder" / "config.json").is_file() and default_pooling(str(tmp_path / "encoder")) == "eos"
    from safetensors.torch import load_file

    assert {k.split(".")[0] for k in load_file(str(tmp_path / "heads.safetensors"))} == {"rte"}  # the decoder lives in the backbone
    encoder, tok2 = load_encoder(str(tmp_path / "encoder"))
    fresh = build_multitask_model(encoder, [get_task("rte"), get_task("xsum")], default_pooling(str(tmp_path / "encoder"))).eval()
    assert sorted(fresh.load_heads(tmp_path)) == ["generation", "rte"]
    for task in ("rte", "xsum"):
        family, head, _, batch = _batch(task, data[task][1][:4], tok2)
        with torch.no_grad():
            torch.testing.assert_close(model(head, family, batch), fresh(head, family, batch))


def test_concurrent_fine_tunes_load_a_bart_whole(tiny_bart):
    """Fine-tunes run as threads: two loads at once must each tie BART's shared embeddings."""
    import threading

    loaded = []
    threads = [threading.Thread(target=lambda: loaded.append(load_encoder(tiny_bart)[0])) for _ in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(loaded) == 2
    for lm in loaded:
        assert not any(p.is_meta for p in lm.parameters())
        assert lm.get_output_embeddings().weight is lm.get_input_embeddings().weight
