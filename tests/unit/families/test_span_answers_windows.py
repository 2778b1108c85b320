"""SQuAD: EM/F1 take the best over every gold answer, and sliding windows let every question be scored."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from muppet_core.data.prepare import normalize_rows
from muppet_core.data.sources import raw_splits
from muppet_core.evaluation.metrics import compute
from muppet_core.families import get_family
from muppet_core.families.build import build_multitask_model
from muppet_core.families.span import best_spans
from muppet_core.models.backbone import load_encoder
from muppet_core.registry import resolve
from muppet_core.tasks.catalog import get_task

MAX_LENGTH = 128
# Real SQuAD v1.1 dev questions with differing gold answers: a prediction, and its EM and F1 by hand.
HAND_CHECKED = {
    # golds: 'Santa Clara, California' | "Levi's Stadium" | "Levi's Stadium in the San Francisco Bay Area at Santa Clara, California."
    "56be4db0acb8001400a502ee": [("Levi's Stadium", 1.0, 1.0), ("Levi's Stadium in Santa Clara", 0.0, 0.625)],
    # golds: '2015' | '2016' | '2015'
    "56bf10f43aeaaa14008c94fd": [("2016", 1.0, 1.0)],
    # golds: '2015' | 'the 2015 season' | '2015'
    "56beace93aeaaa14008c91e3": [("2015 season", 1.0, 1.0)],
    # golds: '"golden anniversary"' | 'gold-themed' | 'gold'
    "56bea9923aeaaa14008c91b9": [("gold", 1.0, 1.0), ("golden", 0.0, 2 / 3)],
}


@pytest.fixture(scope="module")
def squad(mirror):
    spec = get_task("squad")
    _, splits = raw_splits(spec, mirror)
    records, report = normalize_rows(spec, "validation", splits["validation"], resolve(spec.normalizer))
    assert report["dropped"] == 0
    return spec, records


@pytest.mark.parametrize("qid", HAND_CHECKED)
def test_exact_match_and_f1_take_the_best_gold_answer(qid, squad, minilm_path):
    from transformers import AutoTokenizer

    spec, records = squad
    record = next(r for r in records if r.id == qid)
    assert len(set(record.answers)) > 1 and record.answer_text == record.answers[0]
    family = get_family("span").for_task(spec)
    features, dropped = family.encode([record], AutoTokenizer.from_pretrained(minilm_path), MAX_LENGTH)
    assert dropped == 0 and family.references(features) == [record.answers]
    for prediction, em, f1 in HAND_CHECKED[qid]:
        scores = compute(["exact_match", "squad_f1"], [prediction], family.references(features))
        assert scores == pytest.approx({"exact_match": em, "squad_f1": f1}, abs=1e-4), prediction
    # each question has a right answer that its first gold alone scores 0 ("Levi's Stadium", "2016", ...)
    assert any(em == 1.0 and compute(["exact_match"], [p], [[record.answers[0]]])["exact_match"] == 0.0 for p, em, _ in HAND_CHECKED[qid])


def test_sliding_windows_score_every_validation_question(squad, tiny_backbone):
    spec, records = squad
    family = get_family("span").for_task(spec)
    assert family.doc_stride == spec.doc_stride == 32
    encoder, tokenizer = load_encoder(tiny_backbone)
    features, dropped = family.encode(records, tokenizer, MAX_LENGTH)
    examples = {f["example"] for f in features}
    assert dropped <= 1 and examples == set(range(len(records)))  # every one of the 10,570 questions is scored
    windows = np.bincount([f["example"] for f in features])
    assert windows.max() > 3 and (windows > 1).mean() > 0.5
    # answers past the first window: these questions were dropped without windows
    late = [i for i, f in enumerate(features) if f["example"] in examples and f["labels"] != [0, 0] and windows[f["example"]] > 1]
    assert any(features[i - 1]["example"] == features[i]["example"] for i in late)

    # predict on the questions of the longest contexts: one answer per question, the best span of all its windows
    chosen = set(np.argsort(-windows)[:6].tolist())
    subset = [f for f in features if f["example"] in chosen]
    torch.manual_seed(0)
    model = build_multitask_model(encoder, [spec])
    predictions = family.predict(model, "span", subset, tokenizer.pad_token_id, batch_size=16)
    assert len(predictions) == len(chosen) == len(family.references(subset))
    best: dict[int, tuple[float, str]] = {}
    model.eval()
    with torch.no_grad():
        for f in subset:  # independently, one window at a time
            start, end = model("span", family, family.collate([f], tokenizer.pad_token_id))
            allowed = torch.from_numpy(f["offsets"][:, 0] >= 0).unsqueeze(0)
            s, e = best_spans(start, end, allowed)[0].tolist()
            score = float(start[0, s] + end[0, e])
            if f["example"] not in best or score > best[f["example"]][0]:
                best[f["example"]] = (score, f["context"][f["offsets"][s, 0] : f["offsets"][e, 1]])
    assert predictions == [best[e][1] for e in dict.fromkeys(f["example"] for f in subset)]
