"""The two pre-finetuning engines train alike: DeepSpeed (ZeRO 0, 1 and 2, one process) ends with the weights the
plain torch engine does from the same start, heads absent from some updates included."""

from __future__ import annotations

import copy
import os
import shutil

import pytest
import torch
import torch.distributed as dist

from muppet_core.config import PrefinetuneConfig
from muppet_core.families.build import build_multitask_model
from muppet_core.models.backbone import load_encoder
from muppet_core.tasks.catalog import get_task
from muppet_core.training.engine import _free_port, init_distributed
from muppet_core.training.loop import train
from muppet_core.training.settings import prefinetune_settings
from muppet_core.training.streams import build_streams

TASKS = ["commonsenseqa", "rotten_tomatoes", "snli"]  # three heads: ranking, rotten_tomatoes, snli
STEPS = 10


@pytest.fixture(scope="module")
def one_process_group():
    """A one-process gloo group for DeepSpeed in this process, its environment undone afterwards."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DS_ACCELERATOR", os.environ.get("DS_ACCELERATOR", "cuda" if torch.cuda.is_available() else "cpu"))
        for key, value in dict(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), RANK="0", LOCAL_RANK="0", WORLD_SIZE="1").items():
            env.setenv(key, value)
        started = not dist.is_initialized()
        init_distributed()
        yield
        if started:
            dist.destroy_process_group()


@pytest.fixture(scope="module")
def parity_setup(store_with_data, tiny_backbone, tmp_path_factory):
    """The tiny BERT without dropout with its heads (one initial state for every run), and the tasks' streams."""
    from transformers import AutoConfig

    path = tmp_path_factory.mktemp("tiny-bert-no-dropout")
    shutil.copytree(tiny_backbone, path, dirs_exist_ok=True)
    config = AutoConfig.from_pretrained(path)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    config.save_pretrained(path)
    store, keys = store_with_data
    torch.manual_seed(0)
    encoder, tokenizer = load_encoder(str(path))
    model = build_multitask_model(encoder, [get_task(t) for t in TASKS])
    data = {t: store.fetch("data", keys[t]) for t in TASKS}
    streams, _ = build_streams(TASKS, data, tokenizer, 32, 32, 0)
    return model, streams, tokenizer.pad_token_id


def _run(setup, engine: str, zero_stage: int = 0) -> tuple[dict[str, torch.Tensor], list[list[str]]]:
    model, streams, pad_id = setup
    model = copy.deepcopy(model)
    # Two micro-batches an update over three tasks drawn uniformly: every update leaves a head out. Clipping is
    # out of play: the engines sum the gradient norm in different orders, and where a true gradient is zero up
    # to rounding (the ranking head's bias, which shifts every choice alike) Adam turns that into steps of size lr.
    config = PrefinetuneConfig(
        tasks=TASKS, steps=STEPS, micro_batch_size=4, tasks_per_step=2, max_length=32, max_train_examples=32, learning_rate=1e-3,
        optimizer="adamw_torch", max_grad_norm=1e3, sampling="uniform", checkpoint_every=None, engine=engine, zero_stage=zero_stage,
    )
    summary = train(model, streams, prefinetune_settings(config, None), pad_id)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, [h["order"] for h in summary["history"]]


@pytest.fixture(scope="module")
def torch_run(parity_setup) -> tuple[dict[str, torch.Tensor], list[list[str]]]:
    """The torch engine's weights and task order."""
    return _run(parity_setup, "torch")


def _groups(names) -> dict[str, list[str]]:
    """Parameter names per head, and the encoder's."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(".".join(name.split(".")[:2]) if name.startswith("heads.") else "encoder", []).append(name)
    return groups


@pytest.mark.parametrize("zero_stage", [0, 1, 2])
def test_deepspeed_leaves_a_head_absent_from_an_update_as_the_torch_engine_does(parity_setup, torch_run, one_process_group, zero_stage):
    start = parity_setup[0].state_dict()
    (torch_weights, order), (ds_weights, ds_order) = torch_run, _run(parity_setup, "deepspeed", zero_stage)
    assert ds_order == order
    heads = {s.head: t for t, s in parity_setup[1].items()}
    assert sorted(heads) == ["ranking", "rotten_tomatoes", "snli"]
    used = [{h for h, t in heads.items() if t in step} for step in order]
    # Every head sits out an update after it has trained: there AdamW's momentum and weight decay could move it.
    assert all(any(h not in used[i] and any(h in u for u in used[:i]) for i in range(STEPS)) for h in heads), order
    groups = _groups(start)
    diffs = {g: max(float((torch_weights[k] - ds_weights[k]).abs().max()) for k in names) for g, names in groups.items()}
    moved = {g: max(float((torch_weights[k] - start[k]).abs().max()) for k in names) for g, names in groups.items()}
    print(f"ZeRO {zero_stage}: largest |torch - deepspeed| per group {diffs}; largest move from the start {moved}")
    assert all(m > 1e-3 for m in moved.values()), "every group trained"
    assert [k for k in start if not torch.equal(torch_weights[k], ds_weights[k])] == [], diffs
    pooler = [k for k in start if ".pooler." in k]  # BERT's pooler: no head reads it, no update reaches it
    assert pooler and all(torch.equal(ds_weights[k], start[k]) for k in pooler), "untouched, not decayed"
