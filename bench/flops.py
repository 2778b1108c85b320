"""Training FLOPs and rates on a device: an update timer that records each update's micro-batches, the
FLOPs of those micro-batches, and the rate of a plain matrix product (the ceiling a run is held to).

FLOPs of an encoder's micro-batch: 6 x N x T + 12 x L x H x sum(len^2), N the encoder's
non-embedding parameters, T its tokens, L layers, H the hidden size and ``len`` each sequence's
length (the forward and backward of attention's two products, which 6 x N x T leaves out): the formula of
``muppet_core.planning.flops``, which ``muppet plan`` predicts with. On a
RoBERTa encoder with eager attention this is 0.1-0.4% above what ``torch.utils.flop_counter``
counts for a forward and backward (N includes the biases and LayerNorm weights, which do no matrix work).
"""

from __future__ import annotations

import common  # bench/common.py, beside this module
from muppet_core.callbacks import Callback
from muppet_core.planning import hardware
from muppet_core.planning.flops import training_flops


class Recorder(Callback):
    """Laps a ``common.Timer`` at each update's end and records the micro-batches (task, example indices) of each update."""

    def __init__(self) -> None:
        self.timer, self.steps = common.Timer(), []

    def on_train_start(self, total_steps: int, start_step: int = 0) -> None:
        self.timer.start()

    def on_micro_batch(self, step: int, task: str, indices: list[int]) -> None:
        if len(self.steps) <= step:
            self.steps.append([])
        self.steps[step].append((task, list(indices)))

    def on_step_end(self, step: int, logs: dict) -> None:
        self.timer.lap()  # after the loop's one loss read-out per update, which waits for the device


def step_work(recorder: Recorder, streams, pad_id: int, params: int, layers: int, hidden: int) -> dict[str, list[float]]:
    """Per recorded update: examples, real tokens, computed positions, FLOPs of the real tokens and of every computed position.

    The micro-batches are collated again, as the loop collated them, after the timed run."""
    work: dict[str, list[float]] = {k: [] for k in ("examples", "tokens", "computed", "flops", "flops_computed")}
    for micro_batches in recorder.steps:
        totals = dict.fromkeys(work, 0.0)
        for task, indices in micro_batches:
            stream = streams[task]
            batch = stream.family.collate([stream.features[i] for i in indices], pad_id)
            mask = batch["attention_mask"]
            mask = mask.reshape(-1, mask.shape[-1])
            lengths = mask.sum(-1).double()
            totals["examples"] += len(batch["labels"])
            totals["tokens"] += float(lengths.sum())
            totals["computed"] += mask.numel()
            totals["flops"] += training_flops(params, layers, hidden, float(lengths.sum()), float((lengths**2).sum()))
            totals["flops_computed"] += training_flops(params, layers, hidden, mask.numel(), mask.shape[0] * mask.shape[1] ** 2)
        for k, v in totals.items():
            work[k].append(v)
    return work


def matmul_rate(device, dtype, n: int) -> float:
    """FLOP/s of an n x n x n matrix product on ``device`` (a torch device) in ``dtype`` (a torch dtype): ``muppet plan``'s own measure."""
    return hardware.matmul_rate(str(device), str(dtype).removeprefix("torch."), n)


def non_embedding_parameters(encoder_dir: str) -> int:
    """The parameters of an encoder's layer stack (``encoder.encoder``): all but the embedding tables and the pooler."""
    from muppet_core.models.backbone import load_encoder

    encoder, _ = load_encoder(encoder_dir)
    return sum(p.numel() for p in encoder.encoder.parameters())
