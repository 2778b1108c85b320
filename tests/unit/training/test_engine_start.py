"""DeepSpeed's engine starts on the CPU without compiling an op: a machine that never built one (a
fresh clone, a laptop's first run) trains at once instead of after a C++ build."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO

START = """
import torch
from muppet_core.training.engine import DeepSpeedEngine, deepspeed_config, init_distributed
init_distributed()
model = torch.nn.Linear(4, 2)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
engine = DeepSpeedEngine(model, optimizer, scheduler, deepspeed_config(2, 1, 1, 1.0))
loss = engine(torch.ones(2, 4)).sum()
engine.backward(loss)
engine.step()
from deepspeed import comm
print("shm op:", comm.comm.cdb.shm_comm_op)
"""


def test_a_deepspeed_engine_on_the_cpu_builds_no_op(tmp_path):
    extensions = tmp_path / "torch-extensions"  # where DeepSpeed would compile the op: empty, as on a new machine
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(extensions), "DS_ACCELERATOR": "cpu", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-c", START], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "shm op: None" in done.stdout
    assert not extensions.exists() or not any(extensions.iterdir()), sorted(p.name for p in extensions.iterdir())
