"""Reading a pipeline's published leaderboard or results history back from a store (local or
s3://), re-running nothing: what `muppet results` prints."""

from __future__ import annotations

from pydantic import ValidationError

from muppet_core.artifacts.store import ArtifactStore
from muppet_core.errors import MuppetError
from muppet_core.leaderboard.history import read_history, render_history
from muppet_core.leaderboard.render import RENDERERS
from muppet_core.leaderboard.schema import Leaderboard
from muppet_core.registry import safe_name


def published_path(pipeline: str, fmt: str) -> str:
    """Where a pipeline's latest leaderboard lives in the store: ``pipelines/<name>/leaderboard.<fmt>``.

    Raises:
        MuppetError: the pipeline name is not a safe name (``registry.safe_name``).
    """
    return f"pipelines/{safe_name('pipeline', pipeline)}/leaderboard.{fmt}"


def missing_tables(store: ArtifactStore, pipeline: str) -> list[str]:
    """The files of the pipeline's latest table missing from the store (deleted by hand); none where
    the pipeline has published nothing there."""
    tables = {f"leaderboard.{fmt}": published_path(pipeline, fmt) for fmt in ("csv", "md", "json")}
    if not store.exists(tables["leaderboard.csv"].rpartition("/")[0]):
        return []
    return [name for name, path in tables.items() if not store.exists(path)]


def results_text(store: ArtifactStore, pipeline: str, fmt: str, backbone: str | None = None, history: bool = False) -> str:
    """The pipeline's latest leaderboard (or its history) in ``fmt`` (csv, md or json).

    Without ``backbone`` the latest leaderboard is the published file itself, byte for byte;
    with it, the rows of that backbone are rendered from the published JSON.

    Raises:
        MuppetError: nothing published for the pipeline, no such backbone, or a name that is not
            a safe name (``registry.safe_name``).
    """
    safe_name("pipeline", pipeline)
    if backbone is not None:
        safe_name("backbone", backbone)
    never_run = f"no {'results history' if history else 'leaderboard'} for '{pipeline}' in {store.root}; run `muppet run {pipeline}` first"
    try:
        if history:
            entries = read_history(store, pipeline)
            if not entries:
                raise MuppetError(never_run)
            return render_history(entries, fmt, backbone)
        if not store.exists(published_path(pipeline, "json")):
            raise MuppetError(never_run)
        if backbone is None:
            if not store.exists(published_path(pipeline, fmt)):
                raise MuppetError(f"the leaderboard of '{pipeline}' in {store.root} has no {published_path(pipeline, fmt)}; "
                                  f"run `muppet run {pipeline}` to publish it again")
            return store.read_text(published_path(pipeline, fmt))
        board = Leaderboard.model_validate_json(store.read_text(published_path(pipeline, "json")))
        return RENDERERS[fmt](board.only(backbone))
    except KeyError as exc:
        raise MuppetError(exc.args[0]) from None
    except ValidationError:
        raise MuppetError(f"the leaderboard of '{pipeline}' in {store.root} predates --backbone; re-run `muppet run {pipeline}`") from None
