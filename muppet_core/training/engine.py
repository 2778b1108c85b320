"""The optimisation engine under the training loop: DeepSpeed (any device, the CPU included) or plain torch.

Both take one micro-batch loss at a time and step the optimizer once every ``accumulation``
micro-batches, so the loop reads the same whichever runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from typing import Any

import torch
import torch.distributed as dist

from muppet_core.errors import MuppetError

# Autocast's compute type of each training precision (fp32: no autocast).
AUTOCAST_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}
# The DeepSpeed engine's own progress, checkpointed beside the optimizer and scheduler.
DEEPSPEED_COUNTERS = ("global_steps", "global_samples", "micro_steps", "skipped_steps")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_distributed(backend: str | None = None) -> tuple[int, int]:
    """Join the process group the launcher set up (or make a one-process group); returns (rank, world size).

    Without a launcher's environment, a single-process group on 127.0.0.1 is created; on a
    machine without CUDA the gloo backend and DeepSpeed's CPU accelerator are used.
    """
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    if "WORLD_SIZE" not in os.environ:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), RANK="0", LOCAL_RANK="0", WORLD_SIZE="1")
    if not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if torch.cuda.is_available() else "gloo"))
    return dist.get_rank(), dist.get_world_size()


def _skip_shared_memory_op() -> None:
    """Keep DeepSpeed from compiling its shared-memory all-reduce op when its communication backend starts
    on the CPU (a C++ build of a minute or more on a machine that has not built it before). That op serves
    only DeepSpeed's inference all-reduce; training's all-reduce is torch.distributed's either way, so what
    a run computes does not change. On CUDA DeepSpeed looks for no such op (nor probes its ops for it)."""
    if torch.cuda.is_available():
        return
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


def deepspeed_config(
    micro_batch_size: int, accumulation: int, world_size: int, max_grad_norm: float,
    zero_stage: int = 0, precision: str = "fp32", user_config: str | None = None,
) -> dict[str, Any]:
    """The DeepSpeed JSON for a run: the pipeline's settings, then a user's own file merged over them."""
    config: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": micro_batch_size,
        "gradient_accumulation_steps": accumulation,
        "train_batch_size": micro_batch_size * accumulation * world_size,
        "gradient_clipping": max_grad_norm,
        "zero_optimization": {"stage": zero_stage},
        "bf16": {"enabled": precision == "bf16"},
        "fp16": {"enabled": precision == "fp16"},
        "steps_per_print": 2**31 - 1,
        "wall_clock_breakdown": False,
    }
    if user_config:
        with open(user_config, encoding="utf-8") as fh:
            config.update(json.load(fh))
    stage = (config.get("zero_optimization") or {}).get("stage", 0)
    if stage not in (0, 1, 2):
        raise MuppetError(f"deepspeed_config {user_config}: ZeRO stage {stage} is not supported (0, 1 or 2)")
    return config


def clip_gradients(params: list[torch.nn.Parameter], max_norm: float) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_`` over parameters that have gradients, bit for bit, without
    its pass over every gradient when the clipping factor is exactly 1 (the norm is within
    ``max_norm``): multiplying by 1 changes nothing. Returns the total norm."""
    total = torch.nn.utils.get_total_norm([p.grad for p in params])
    if max_norm / (total + 1e-6) < 1.0:  # the factor clip_grad_norm_ clamps to 1
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, total)
    return total


class TorchEngine:
    """Plain torch: gradients accumulated over ``accumulation`` micro-batches, averaged over ranks, clipped, stepped.

    With ``bf16`` or ``fp16`` the forward pass and loss run under autocast on ``device`` (the
    weights, gradients and optimizer stay fp32); fp16 also scales the loss with a GradScaler,
    which skips an update whose gradients overflowed.

    Args:
        model: the module to train.
        optimizer: its optimizer.
        scheduler: a learning-rate scheduler stepped once per update.
        accumulation: micro-batches per update on this rank.
        max_grad_norm: gradient clipping.
        precision: ``fp32``, ``bf16`` or ``fp16``.
        device: the device the model is on (autocast's device type).
    """

    def __init__(
        self, model: torch.nn.Module, optimizer, scheduler, accumulation: int, max_grad_norm: float,
        precision: str = "fp32", device: torch.device = torch.device("cpu"),
    ):
        self.module, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.accumulation, self.max_grad_norm, self.micro_steps = accumulation, max_grad_norm, 0
        self.precision, self.device = precision, device
        self.scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None

    def __call__(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context of a micro-batch's forward pass and loss: autocast at the run's precision (none in fp32)."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=getattr(torch, AUTOCAST_DTYPES[self.precision]))

    def backward(self, loss: torch.Tensor) -> None:
        loss = loss / self.accumulation
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def step(self) -> None:
        self.micro_steps += 1
        if self.micro_steps % self.accumulation:
            return
        if dist.is_initialized() and dist.get_world_size() > 1:
            self._average_gradients(dist.get_world_size())
        if self.scaler:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients
        clip_gradients([p for p in self.module.parameters() if p.grad is not None], self.max_grad_norm)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    def _average_gradients(self, world_size: int) -> None:
        """Average the gradients over ranks in one all-reduce. A parameter no rank computed a gradient for
        (the head of a task absent from the update) keeps none, so the optimizer skips it as on one rank."""
        params = [p for p in self.module.parameters() if p.requires_grad]
        present = torch.tensor([float(p.grad is not None) for p in params], device=self.device)
        dist.all_reduce(present)
        used = [p for p, n in zip(params, present.tolist()) if n]
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in used])
        dist.all_reduce(flat)
        flat /= world_size
        for p, grad in zip(used, flat.split([p.numel() for p in used])):
            p.grad = grad.view_as(p)

    def state(self) -> dict:
        """The engine's own counters (and the fp16 loss scale), for checkpoints."""
        return {"micro_steps": self.micro_steps, **({"scaler": self.scaler.state_dict()} if self.scaler else {})}

    def load_state(self, state: dict) -> None:
        """Put back the counters saved by ``state``."""
        self.micro_steps = state["micro_steps"]
        if self.scaler and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])


def flattens_groups(config: dict[str, Any]) -> bool:
    """Whether DeepSpeed flattens each optimizer group into one tensor with one optimizer state (ZeRO
    stage 1 or 2, or its fp16/bf16 optimizers), rather than stepping the torch optimizer as it is."""
    half = any(config.get(key, {}).get("enabled") for key in ("fp16", "bf16", "bfloat16"))
    return half or config.get("zero_optimization", {}).get("stage", 0) > 0


class DeepSpeedEngine:
    """DeepSpeed's engine behind the same interface (it averages ranks and divides by the accumulation itself).

    A parameter no rank computed a gradient for in an update (the head of a task absent from it) is
    left alone, as the torch engine leaves it: DeepSpeed hands it a zero gradient, on which AdamW
    would still move it (momentum, weight decay); here its gradient is dropped before the step.
    Where DeepSpeed flattens each group into one tensor with one Adam state (``flattens_groups``), the
    flat tensor is dropped when none of its parameters has a gradient: such a run is given one group
    per part of the model, each head its own (see ``loop._optimizer``).

    Args:
        model: the module to train.
        optimizer: a torch optimizer (DeepSpeed then needs no fused-optimizer build).
        scheduler: stepped by DeepSpeed once per update.
        config: the DeepSpeed JSON (see ``deepspeed_config``).
    """

    def __init__(self, model: torch.nn.Module, optimizer, scheduler, config: dict[str, Any]):
        import deepspeed

        _skip_shared_memory_op()
        groups = {id(group): list(group["params"]) for group in optimizer.param_groups}
        self._params = [p for p in model.parameters() if p.requires_grad]
        self._present: set[int] = set()  # ids of the parameters that got a gradient in this update
        present = self._present
        for p in self._params:
            p.register_hook(lambda grad, key=id(p): present.add(key))
        optimizer.register_step_pre_hook(self._drop_absent)
        self.ds, self.optimizer, _, self.scheduler = deepspeed.initialize(
            model=model, optimizer=optimizer, lr_scheduler=scheduler, config=config, dist_init_required=False
        )
        # What the torch optimizer steps -> the parameters it holds: a parameter itself, or the flat tensor DeepSpeed
        # made of a group (each tensor keeps its identity when a checkpoint is loaded; the group dicts do not).
        self._members = {
            id(t): [t] if any(t is p for p in groups[id(group)]) else groups[id(group)]
            for group in optimizer.param_groups for t in group["params"]
        }
        self.module = self.ds.module

    def __call__(self, *args, **kwargs):
        return self.ds(*args, **kwargs)

    def autocast(self) -> contextlib.AbstractContextManager:
        """Nothing: DeepSpeed runs bf16/fp16 itself (its config's ``bf16``/``fp16``)."""
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        self.ds.backward(loss)

    def step(self) -> None:
        boundary = self.ds.is_gradient_accumulation_boundary()
        if boundary and dist.is_initialized() and dist.get_world_size() > 1:  # present on any rank: present
            present = torch.tensor([float(id(p) in self._present) for p in self._params], device=self._params[0].device)
            dist.all_reduce(present)
            self._present.update(id(p) for p, n in zip(self._params, present.tolist()) if n)
        self.ds.step()
        if boundary:
            self._present.clear()

    def _drop_absent(self, optimizer, args, kwargs) -> None:
        """Before the torch optimizer steps: drop the gradient of each tensor none of whose parameters got one."""
        for group in optimizer.param_groups:  # under ZeRO, one group at a time
            for tensor in group["params"]:
                members = self._members.get(id(tensor))  # None: a tensor DeepSpeed made after initialize, left alone
                if members is not None and not any(id(p) in self._present for p in members):
                    tensor.grad = None

    def state(self) -> dict[str, int]:
        """DeepSpeed's counters (updates, samples, micro-batches, skipped updates), for checkpoints."""
        return {k: int(getattr(self.ds, k)) for k in DEEPSPEED_COUNTERS}

    def load_state(self, state: dict[str, int]) -> None:
        """Put back the counters saved by ``state``."""
        for k in DEEPSPEED_COUNTERS:
            setattr(self.ds, k, state[k])
