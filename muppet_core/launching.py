"""How pre-finetuning's ranks are started: one process, torchrun (on one node or several, with c10d
rendezvous) or DeepSpeed's launcher. Every setting here shapes execution only: a run on 1 node or
4 makes the same artifact, so none is in a content key."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from muppet_core.schema import MAX_WORKERS, Strict, execution

RDZV_PORT = 29400
"""torchrun's default c10d rendezvous port."""


class Launching(Strict):
    """Launcher settings of a pre-finetuning run (``PrefinetuneConfig`` inherits them)."""

    launcher: Literal["local", "torchrun", "deepspeed"] = execution("local")
    """local: one process; torchrun or deepspeed: that launcher, with nproc_per_node/hostfile."""
    nproc_per_node: int = execution(1, gt=0, le=MAX_WORKERS)
    """Processes per node under torchrun/deepspeed (one per GPU)."""
    hostfile: str | None = execution(None)
    """DeepSpeed hostfile for multi-node runs."""
    nnodes: int = execution(1, gt=0, le=MAX_WORKERS)
    """Nodes of a torchrun run. The flow's node starts one agent; the others run ``muppet join STORE``
    (docs/scaling.md: Several GPUs and several nodes). More than one needs a store every node reaches."""
    rdzv_endpoint: str | None = execution(None, pattern=r"^[A-Za-z0-9_.\-\[\]:]+:[0-9]+$")
    """HOST:PORT of the c10d rendezvous, a name every node resolves to the flow's node (torchrun, nnodes > 1)."""
    shared_store: bool = execution(False)
    """The store is a local path, but every node mounts it at that path (a shared filesystem)."""

    @model_validator(mode="after")
    def _nodes_need_torchrun_and_a_rendezvous(self) -> Launching:
        if self.nnodes > 1 and self.launcher != "torchrun":
            raise ValueError(f"nnodes: {self.nnodes} nodes are started by torchrun (launcher: torchrun); "
                             "DeepSpeed's launcher takes its nodes from a hostfile")
        if self.nnodes > 1 and not self.rdzv_endpoint:
            raise ValueError("rdzv_endpoint: several nodes meet at a rendezvous: give HOST:PORT of the flow's node")
        return self

    def multi_node(self) -> str | None:
        """What spreads the ranks over several nodes, in words (torchrun's nnodes or a DeepSpeed
        hostfile); None when they run on one."""
        if self.nnodes > 1:
            return f"pre-finetuning on {self.nnodes} nodes (prefinetune.nnodes)"
        return "pre-finetuning on a hostfile's hosts (prefinetune.hostfile)" if self.hostfile else None
