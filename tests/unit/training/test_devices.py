"""Every rank's device comes from one function, and every training and evaluation batch is moved
there by one helper: both are recorded here and compared with every batch the model consumed,
in a pre-finetune (four families) and in a fine-tune with early stopping and its final evaluation."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from muppet_core.artifacts.store import ArtifactStore
from muppet_core.config import DataConfig, FinetuneConfig, PrefinetuneConfig
from muppet_core.data.stage import data_stage
from muppet_core.models import devices
from muppet_core.models.backbone import Variant
from muppet_core.models.multitask import MultiTaskModel
from muppet_core.training.finetune import FinetuneRun, finetune
from muppet_core.training.worker import PrefinetuneJob

TASKS = ["rotten_tomatoes", "snli", "commonsenseqa", "squad"]


def test_rank_device_follows_the_setting_then_cuda_local_rank_then_the_cpu(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert devices.rank_device() == torch.device("cuda:3" if torch.cuda.is_available() else "cpu")
    assert devices.rank_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert devices.rank_device() == torch.device("cuda", 3) and devices.rank_device("cuda") == torch.device("cuda", 3)
    assert devices.rank_device("cuda:1") == torch.device("cuda", 1) and devices.rank_device("cpu") == torch.device("cpu")
    with pytest.raises(devices.DeviceError, match=r"'cuda:7' is set but this machine has 2 CUDA device\(s\), cuda:0 to cuda:1"):
        devices.rank_device("cuda:7")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(devices.DeviceError, match="no CUDA device"):
        devices.rank_device("cuda:0")
    with pytest.raises(ValidationError, match="device"):
        FinetuneConfig(benchmarks=["rte"], device="gpu")


@pytest.mark.gpu
def test_a_rank_trains_and_evaluates_on_its_cuda_device(monkeypatch, tiny_backbone):
    from muppet_core.families import get_family
    from muppet_core.families.build import build_multitask_model
    from muppet_core.models.backbone import load_encoder
    from muppet_core.tasks.catalog import get_task

    monkeypatch.setenv("LOCAL_RANK", "0")
    device = devices.rank_device()
    assert device == torch.device("cuda", 0)
    encoder, tokenizer = load_encoder(tiny_backbone)
    model = build_multitask_model(encoder, [get_task("rte")]).to(device)
    batch = devices.to_device(dict(tokenizer(["a premise", "and a hypothesis"], return_tensors="pt", padding=True)), device)
    logits = model("rte", get_family("classification"), batch)
    assert logits.device == device and torch.isfinite(logits).all()


@pytest.fixture
def recorder(monkeypatch):
    """Records the devices chosen, the tensors moved, and every batch the model consumed (training or not)."""
    chosen, moved, consumed = [], {}, []
    rank_device, to_device, forward = devices.rank_device, devices.to_device, MultiTaskModel.forward

    def choose(setting=None):
        chosen.append(rank_device(setting))
        return chosen[-1]

    def move(batch, device):
        out = to_device(batch, device)
        moved.update({id(t): (t, device) for t in out.values()})  # the tensor is kept: its id stays unique
        return out

    def consume(self, head, family, batch):
        consumed.append((torch.is_grad_enabled(), batch))
        return forward(self, head, family, batch)

    monkeypatch.setattr(devices, "rank_device", choose)
    monkeypatch.setattr(devices, "to_device", move)
    monkeypatch.setattr(MultiTaskModel, "forward", consume)
    return chosen, moved, consumed


def _check(recorder, training: int, evaluation: int) -> None:
    chosen, moved, consumed = recorder
    assert chosen and all(d == chosen[0] for d in chosen)
    assert sum(g for g, _ in consumed) == training and sum(not g for g, _ in consumed) == evaluation
    for _, batch in consumed:
        for name, tensor in batch.items():
            assert id(tensor) in moved, f"batch tensor {name} reached the model without to_device"
            assert moved[id(tensor)][1] == chosen[0] and tensor.device == chosen[0]


def test_every_batch_of_a_prefinetune_and_a_finetune_goes_to_the_chosen_device(mirror, tiny_backbone, tmp_path, recorder):
    store = ArtifactStore(str(tmp_path / "store"))
    keys = {t: data_stage(t, DataConfig(mirror=mirror), store).key for t in [*TASKS, "rte"]}
    config = PrefinetuneConfig(tasks=TASKS, steps=3, micro_batch_size=4, tasks_per_step=4, max_length=48, max_train_examples=32,
                               checkpoint_every=None, engine="torch")
    PrefinetuneJob(config=config, backbone_path=tiny_backbone, store=store.root, data_keys={t: keys[t] for t in TASKS},
                   out_dir=str(tmp_path / "pft"), checkpoint_dir=str(tmp_path / "ckpt")).execute()
    _check(recorder, training=3 * 4, evaluation=0)
    recorder[2].clear()
    ft = FinetuneConfig(benchmarks=["rte"], epochs=1, batch_size=8, max_length=48, max_train_examples=32, max_eval_examples=20,
                        eval_every=2, checkpoint_every=None, device="cpu")
    variant = Variant("prefinetuned", "k", str(tmp_path / "pft" / "encoder"), tuple(TASKS))
    record = finetune(FinetuneRun(variant, "rte", 0, 1e-4), store.fetch("data", keys["rte"]), ft, "test")
    assert record.eval_examples == 20
    # 4 updates of 8 (29 examples: early stopping selects on 3 carved from the 32); one batch each time the
    # selection slice is scored (after updates 2 and 4, on the final weights, and for the record) and one
    # for the 20 validation examples
    _check(recorder, training=4, evaluation=5)


def test_prefetched_batches_are_collated_ahead_on_a_helper_thread_in_order():
    """With prefetch each item is taken before the previous one is handed out and collated on the helper
    thread; without it, in turn and here. The batches are the same, in the same order, and a collate
    that fails raises at its item."""
    import threading

    from muppet_core.models.devices import prefetched

    taken, threads = [], []

    def items():
        for i in range(4):
            taken.append(i)
            yield i

    def collate(i):
        threads.append(threading.current_thread().name)
        if i == 99:
            raise ValueError("bad row")
        return {"x": torch.full((2, 3), i), "y": torch.arange(i + 1)}

    cpu = torch.device("cpu")
    seen = []
    for i, batch in prefetched(items(), collate, cpu, prefetch=True):
        seen.append(i)
        assert taken == list(range(min(i + 2, 4)))  # the next item was already taken
        assert torch.equal(batch["x"], torch.full((2, 3), i)) and torch.equal(batch["y"], torch.arange(i + 1))
    assert seen == [0, 1, 2, 3] and all(t.startswith("muppet-prefetch") for t in threads)
    taken.clear(), threads.clear()
    for i, batch in prefetched(items(), collate, cpu):  # default on a CPU: no thread, in turn
        assert taken == list(range(i + 1)) and torch.equal(batch["x"], torch.full((2, 3), i))
    assert threads == [threading.current_thread().name] * 4
    with pytest.raises(ValueError, match="bad row"):
        list(prefetched(iter([0, 99, 1]), collate, cpu, prefetch=True))


@pytest.mark.gpu
def test_prefetched_batches_reach_a_cuda_device_pinned_and_equal():
    """On a CUDA device prefetch is on by default: each batch is pinned on the helper thread and copied
    without blocking; on the device it equals the batch collated here and copied plainly."""
    from muppet_core.models.devices import prefetched

    def collate(i):
        return {"x": torch.arange(6.0).reshape(2, 3) * i, "y": torch.tensor([i, i + 1])}

    cuda = torch.device("cuda")
    got = list(prefetched(range(5), collate, cuda))
    assert [i for i, _ in got] == list(range(5))
    for i, batch in got:
        assert all(v.device.type == "cuda" for v in batch.values())
        assert all(torch.equal(batch[k].cpu(), v) for k, v in collate(i).items())
