"""A family defined outside the library (tests/length_plugin.py, as a plugin module) and registered
by the test, trained by the real loop and scored by the real ``evaluate``: adding a family edits no
library module."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from muppet_core.config import Optimization
from muppet_core.families import FAMILIES, get_family, register_family, unregister_family
from muppet_core.families.build import build_multitask_model
from muppet_core.models.backbone import load_encoder
from muppet_core.tasks.catalog import TaskSpec
from muppet_core.training.evaluate import evaluate
from muppet_core.training.loop import TaskStream, train
from muppet_core.training.settings import LoopSettings
from tests.length_plugin import BUCKETS, BucketRecord, LengthBucketFamily

SHORT_WORDS = ["red", "blue", "green", "pink"]
LONG_WORDS = ["one", "two", "three", "four", "five", "six", "seven"]


def _records(n: int, seed: int) -> list[BucketRecord]:
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        long = i % 2
        words = rng.choice(LONG_WORDS if long else SHORT_WORDS, size=int(rng.integers(6, 10) if long else rng.integers(1, 4)))
        records.append(BucketRecord(" ".join(words), long, id=str(i)))
    return records


@pytest.fixture
def family():
    """The plugin family, registered for the test only."""
    plugin = register_family(LengthBucketFamily())
    try:
        yield plugin
    finally:
        unregister_family(plugin.name)


def _independent_accuracy(model, features, records) -> float:
    """The accuracy computed apart from the library: one example at a time, straight through the encoder and head."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        predicted = []
        for f in features:
            hidden = model.encoder(input_ids=torch.tensor([f["input_ids"]])).last_hidden_state
            predicted.append(int(model.heads["bucket"](hidden[:, 0]).argmax(-1)))
    model.train(was_training)
    return sum(p == r.bucket for p, r in zip(predicted, records)) / len(records)


def _spec(**fields) -> TaskSpec:
    return TaskSpec.model_validate({"name": "buckets", "family": "length_bucket", "hub": {"path": "none/buckets"}, "metric": "accuracy", **fields})


def test_the_registry_and_the_catalog_know_a_registered_family_only_while_it_is_registered(family):
    assert get_family("length_bucket") is family and "length_bucket" in FAMILIES.names()
    with pytest.raises(ValueError, match="already registered"):
        register_family(LengthBucketFamily())
    assert _spec(labels=BUCKETS).loss_n_rule() == 2
    with pytest.raises(ValidationError, match="length_bucket tasks need two 'labels'"):
        _spec(labels=["only one"])
    with pytest.raises(KeyError, match="did you mean 'length_bucket'"):
        get_family("length_buckets")
    unregister_family("length_bucket")
    with pytest.raises(ValidationError, match="unknown task family"):
        _spec(labels=BUCKETS)
    register_family(family)


def test_a_plugin_family_trains_through_the_loop_and_is_scored_by_evaluate(family, tiny_backbone):
    spec = _spec(labels=BUCKETS)
    torch.manual_seed(0)
    encoder, tok = load_encoder(tiny_backbone)
    model = build_multitask_model(encoder, [spec])
    assert list(model.heads) == ["bucket"] and model.head_shapes == {"bucket": {"kind": "linear", "outputs": 2}}
    eval_records = _records(20, seed=1)
    eval_features, _ = family.encode(eval_records, tok, 32)
    untrained = evaluate(model, "bucket", spec, eval_features, tok.pad_token_id, batch_size=6)
    assert untrained == {"accuracy": pytest.approx(_independent_accuracy(model, eval_features, eval_records), abs=1e-12)}

    train_features, dropped = family.encode(_records(32, seed=0), tok, 32)
    assert dropped == 0
    stream = TaskStream(family, family.head_name(spec), train_features, spec.loss_scale(32))
    assert stream.loss_scale == pytest.approx(1 / math.log(2))
    settings = LoopSettings(Optimization(warmup_ratio=0.0, weight_decay=0.0, r3f_eps=1e-3), steps=30, tasks_per_step=1,
                            micro_batch_size=8, learning_rate=1e-2, seed=0)
    summary = train(model, {"buckets": stream}, settings, tok.pad_token_id)
    losses = [h["loss"] for h in summary["history"]]
    assert summary["examples_seen"] == 30 * 8 and all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-5:]) < np.mean(losses[:5])

    metrics = evaluate(model, "bucket", spec, eval_features, tok.pad_token_id, batch_size=6)
    assert family.predict_calls == 2 and model.training  # evaluate asked the family, and left the mode as it was
    assert metrics == {"accuracy": pytest.approx(_independent_accuracy(model, eval_features, eval_records), abs=1e-12)}
    assert metrics["accuracy"] > untrained["accuracy"]
