"""`muppet push`: a pre-finetuned variant's encoder, heads and scored model card to a Hugging Face
Hub repository, through ``HfApi.upload_folder``.

The token (the command reads it from ``HF_TOKEN`` only) is handed to ``huggingface_hub``, which
sends it in the Authorization header; nothing here prints or logs it. ``HF_ENDPOINT`` points the
upload at another Hub (a self-hosted one, or the tests' recording server).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi, ModelCard

from muppet_core import stages
from muppet_core.artifacts.store import ArtifactStore
from muppet_core.errors import MuppetError, first_line
from muppet_core.leaderboard.read import published_path
from muppet_core.leaderboard.schema import Leaderboard, Row
from muppet_core.publish.card import scored_card

KEY_PREFIX = 8
"""The shortest key prefix taken for a key (the results history shows 8 characters)."""
EXTRAS = ("heads.safetensors", "heads.json", "pooling.txt", "train_summary.json", "loss_curves.png")
"""Files beside ``encoder/`` that go to the repository's root with the encoder's files."""


@dataclass(frozen=True)
class Scored:
    """A pre-finetuned variant as one pipeline's leaderboard shows it."""

    pipeline: str
    store: ArtifactStore
    board: Leaderboard
    row: Row


def _matches(row: Row, target: str) -> bool:
    if row.variant != "prefinetuned" or not row.variant_key:
        return False
    return target in (row.model, row.backbone) or (len(target) >= KEY_PREFIX and row.variant_key.startswith(target))


def find_scored(stores: dict[str, ArtifactStore], target: str) -> list[Scored]:
    """The leaderboard rows of a pre-finetuned variant: ``target`` is a row label
    (``tiny / prefinetuned``), a backbone label (its pre-finetuned row) or its key (8 characters or more).

    Args:
        stores: pipeline name -> the store its leaderboard is published in.
    """
    found = []
    for pipeline, store in stores.items():
        path = published_path(pipeline, "json")
        if store.exists(path):
            board = Leaderboard.model_validate_json(store.read_text(path))
            found += [Scored(pipeline, store, board, r) for r in board.rows if _matches(r, target)]
    return found


def choose(found: list[Scored], target: str) -> Scored:
    """The one match.

    Raises:
        MuppetError: none, or several (another variant, or the same one on several leaderboards).
    """
    if not found:
        raise MuppetError(f"no leaderboard shows a pre-finetuned variant '{target}': give a row label "
                          "(as `muppet results` prints it), a backbone label or a pre-finetuned model's key")
    if len(found) > 1:
        where = "; ".join(f"{s.row.model} (key {s.row.variant_key[:KEY_PREFIX]}) in '{s.pipeline}'" for s in found)
        raise MuppetError(f"'{target}' names {len(found)} leaderboard rows: {where}; pick one with --pipeline or a key")
    return found[0]


def stage_folder(scored: Scored, repo: str, base_model: str | None, folder: Path) -> None:
    """The repository's files: the encoder's at the root, its card with the scores as README.md,
    and the heads, training summary and loss curves beside them."""
    artifact = scored.store.fetch(stages.PREFINETUNE, scored.row.variant_key)
    for src in [p for p in (artifact / "encoder").iterdir() if p.is_file()] + [artifact / n for n in EXTRAS if (artifact / n).is_file()]:
        shutil.copy2(src, folder / src.name)
    card = ModelCard.load(artifact / "encoder" / "README.md")
    scored_card(card, scored.board, scored.row, model_name=repo.rsplit("/", 1)[-1], base_model=base_model).save(folder / "README.md")


def push(scored: Scored, repo: str, token: str, private: bool = False, base_model: str | None = None) -> str:
    """Create ``repo`` (if it does not exist) and upload the variant to it; returns the commit URL.

    Raises:
        MuppetError: the Hub refused or could not be reached.
    """
    api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="muppet-push-") as tmp:
        stage_folder(scored, repo, base_model, Path(tmp))
        try:
            api.create_repo(repo, private=private, exist_ok=True)
            info = api.upload_folder(repo_id=repo, folder_path=tmp, commit_message=f"Muppet: {scored.row.model} of '{scored.pipeline}'")
        except Exception as exc:  # noqa: BLE001  (HTTP, connection and validation errors of huggingface_hub alike: one line)
            raise MuppetError(f"push to {api.endpoint}/{repo} failed: {first_line(exc)}") from None
    return info.commit_url
