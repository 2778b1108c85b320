"""How fine-tune processes are pinned: GPUs in turn, each its share of the cores, thread counts to match."""

from __future__ import annotations

from muppet_core.config import FinetuneConfig
from muppet_core.training.pinning import Device, DevicePool, plan_devices
from muppet_core.training.executor import pick_executor


def test_each_slot_gets_its_share_of_the_cores_and_a_gpu_in_turn():
    assert plan_devices(2, 0, [0, 1]) == [Device(cores=[0], threads=1), Device(cores=[1], threads=1)]
    assert plan_devices(2, 0, list(range(7))) == [Device(cores=[0, 1, 2], threads=3), Device(cores=[3, 4, 5], threads=3)]
    assert [d.gpu for d in plan_devices(3, 2, list(range(6)))] == [0, 1, 0]
    assert plan_devices(3, 0, [4, 5]) == [Device(cores=[4], threads=1), Device(cores=[5], threads=1), Device(cores=[4], threads=1)]
    assert plan_devices(1, 0, [0, 1, 2, 3], threads=2) == [Device(cores=[0, 1], threads=2)]  # finetune.threads wins over the share
    assert Device(gpu=1, cores=[2, 3], threads=2).env() == {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "CUDA_VISIBLE_DEVICES": "1"}
    assert "CUDA_VISIBLE_DEVICES" not in Device(cores=[0]).env()


def test_a_lease_waits_for_a_free_device_and_gives_it_back():
    pool = DevicePool(plan_devices(2, 0, [0, 1]))
    with pool.lease() as first, pool.lease() as second:
        assert {first.cores[0], second.cores[0]} == {0, 1}
    with pool.lease() as again:
        assert again in (first, second)


def test_auto_takes_processes_where_runs_would_share_a_process():
    config = FinetuneConfig(benchmarks=["rte"])
    assert pick_executor(config, gpus=0) == "thread"
    assert pick_executor(config, gpus=2) == "process"
    assert pick_executor(config.model_copy(update={"concurrency": 2}), gpus=0) == "process"
    assert pick_executor(FinetuneConfig(benchmarks=["rte"], executor="thread", concurrency=4), gpus=4) == "thread"
