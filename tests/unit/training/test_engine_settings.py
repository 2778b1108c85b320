"""Settings the engines cannot honour are refused in one line before any training: R3F on DeepSpeed's
16-bit weights, a ZeRO stage the absent-head rule does not cover; and an empty batch decodes to nothing."""

from __future__ import annotations

import json

import pytest
import torch
from pydantic import ValidationError

from muppet_core.config import PrefinetuneConfig
from muppet_core.errors import MuppetError
from muppet_core.models.decoding import beam_search
from muppet_core.training.engine import deepspeed_config, flattens_groups

SETTINGS = {"tasks": ["rte"], "steps": 1, "r3f_eps": 1e-5}


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_r3f_is_refused_on_deepspeeds_16_bit_weights(precision):
    # the paper's noise on an N(0, 0.02) embedding: most of it rounds away in 16 bits
    embeds = torch.randn(4096) * 0.02
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    noised = embeds.to(dtype) + torch.empty(4096).uniform_(-1e-5, 1e-5).to(dtype)
    assert (noised == embeds.to(dtype)).float().mean() > 0.4
    with pytest.raises(ValidationError, match=f"R3F's noise rounds away on DeepSpeed's {precision} weights"):
        PrefinetuneConfig(**SETTINGS, engine="deepspeed", precision=precision)
    # autocast keeps the torch engine's weights fp32; fp32 DeepSpeed keeps them too
    assert PrefinetuneConfig(**SETTINGS, engine="torch", precision=precision).r3f_eps == 1e-5
    assert PrefinetuneConfig(**SETTINGS, engine="deepspeed", precision="fp32").r3f_eps == 1e-5


def test_a_user_deepspeed_json_asking_for_zero_3_is_refused(tmp_path):
    own = tmp_path / "ds.json"
    own.write_text(json.dumps({"zero_optimization": {"stage": 3}}))
    with pytest.raises(MuppetError, match=r"ZeRO stage 3 is not supported \(0, 1 or 2\)$"):
        deepspeed_config(4, 2, 1, 1.0, user_config=str(own))
    own.write_text(json.dumps({"zero_optimization": {"stage": 2}}))
    assert flattens_groups(deepspeed_config(4, 2, 1, 1.0, user_config=str(own)))
    assert not flattens_groups(deepspeed_config(4, 2, 1, 1.0))


def test_beam_search_of_no_rows_is_no_hypotheses():
    def step(ids, cache):  # never called for an empty batch
        raise AssertionError("stepped")

    assert beam_search(step, torch.zeros(0, 1, dtype=torch.long), 2, 5, 3) == []
