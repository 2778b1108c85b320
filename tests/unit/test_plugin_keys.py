"""A user's plugin code is part of the keys of what it computes: editing one user normalizer
recomputes that dataset's data artifact and no other, and editing a plugin family recomputes the
data of its datasets and the fine-tunes that use it."""

from __future__ import annotations

import os
import sys

import pytest
import yaml

from muppet_core.artifacts.fingerprints import code_version
from muppet_core.artifacts.store import ArtifactStore
from muppet_core.config import DataConfig, FinetuneConfig
from muppet_core.data.stage import data_stage
from muppet_core.models.backbone import Variant
from muppet_core.plugins import PLUGINS_ENV, use_plugins
from muppet_core.tasks.catalog import CATALOG_ENV, use_catalog_dirs
from muppet_core.training.finetune import FinetuneRun, finetune_key

NORMALIZER = '''
from muppet_core.families.classification import ClassificationRecord


def line(row, spec):
    label, text = row["line"].split(" ", 1)
    return ClassificationRecord(text_a=text.strip(){edit}, text_b=None, label=int(label))
'''

FAMILY = '''
from muppet_core.families import FAMILIES, register_family
from muppet_core.families.classification import ClassificationFamily


class PolarityFamily(ClassificationFamily):
    """Classification under a name of its own{edit}."""

    name = "polarity"


if "polarity" not in FAMILIES:
    register_family(PolarityFamily())
'''


def _entry(normalizer: str, family: str = "classification") -> dict:
    return {
        "family": family, "hub": {"path": "example/reviews"},
        "mirror": {"train": "sst2/stsa.binary.train", "validation": "sst2/stsa.binary.dev"},
        "reader": "lines", "normalizer": normalizer, "labels": ["negative", "positive"], "metric": "accuracy",
    }


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    """Two normalizer modules and a family module of the user's, beside a catalog of three datasets
    that use them; the modules' folder is on the import path as a pipelines file's is."""
    monkeypatch.setenv(CATALOG_ENV, "")
    monkeypatch.setenv(PLUGINS_ENV, "")
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))  # use_plugins adds the modules' folder
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in ("user_norm_a", "user_norm_b", "user_family"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    code = tmp_path / "code"
    code.mkdir()
    (code / "user_norm_a.py").write_text(NORMALIZER.format(edit=""))
    (code / "user_norm_b.py").write_text(NORMALIZER.format(edit=""))
    (code / "user_family.py").write_text(FAMILY.format(edit=""))
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "mine.yaml").write_text(yaml.safe_dump({"tasks": {
        "reviews_a": _entry("user_norm_a:line"),
        "reviews_b": _entry("user_norm_b:line"),
        "reviews_polarity": _entry("user_norm_b:line", family="polarity"),
    }}))
    use_plugins(["user_family"], str(code))
    use_catalog_dirs([str(catalog)])
    yield code
    from muppet_core.families import FAMILIES

    FAMILIES.unregister("polarity")
    code_version.cache_clear()


def _keys(mirror: str, store: ArtifactStore) -> dict[str, tuple[str, bool]]:
    code_version.cache_clear()  # a fresh process would digest the code as it is now
    out = {}
    for task in ("reviews_a", "reviews_b", "reviews_polarity"):
        output = data_stage(task, DataConfig(mirror=mirror), store)
        out[task] = (output.key, output.cache_hit)
    return out


def test_editing_a_user_normalizer_recomputes_only_its_data(plugins, mirror, tmp_path):
    store = ArtifactStore(str(tmp_path / "store"))
    first = _keys(mirror, store)
    assert not any(hit for _, hit in first.values())
    assert _keys(mirror, store) == {t: (key, True) for t, (key, _) in first.items()}

    (plugins / "user_norm_a.py").write_text(NORMALIZER.format(edit=".lower()"))
    edited = _keys(mirror, store)
    assert edited["reviews_a"][0] != first["reviews_a"][0] and not edited["reviews_a"][1]  # recomputed
    assert edited["reviews_b"] == (first["reviews_b"][0], True)
    assert edited["reviews_polarity"] == (first["reviews_polarity"][0], True)


def test_editing_a_plugin_family_recomputes_its_data_and_fine_tunes(plugins, mirror, tmp_path):
    store = ArtifactStore(str(tmp_path / "store"))
    first = _keys(mirror, store)
    variant = Variant("base", "backbone-key", "/nowhere")
    config = FinetuneConfig(benchmarks=["reviews_b", "reviews_polarity"])

    def finetune_keys(data):
        return {t: finetune_key(FinetuneRun(variant, t, 0, 2e-5), store_output(data, t), config) for t in ("reviews_b", "reviews_polarity")}

    def store_output(keys, task):
        from muppet_core.artifacts.stage import StageOutput

        return StageOutput("data", task, keys[task][0], "", True)

    before = finetune_keys(first)
    (plugins / "user_family.py").write_text(FAMILY.format(edit=", edited"))
    edited = _keys(mirror, store)
    assert edited["reviews_polarity"][0] != first["reviews_polarity"][0]
    assert edited["reviews_a"] == (first["reviews_a"][0], True) and edited["reviews_b"] == (first["reviews_b"][0], True)
    after = finetune_keys(edited)
    assert after["reviews_b"] == before["reviews_b"] and after["reviews_polarity"] != before["reviews_polarity"]
