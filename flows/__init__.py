"""Prefect flows: thin wiring of muppet_core calls (no ML logic lives here).

The executor the flows bring, ``deployment`` (fine-tunes as flow runs on a work pool's workers), is
registered here, in every process that imports a flow.
"""

from flows.finetune_remote import DeploymentExecutor
from muppet_core.training.executor import register_executor

register_executor(DeploymentExecutor())
