"""Data sources: mirror first, hub fallback, one clear message when neither works."""

import shutil

import pytest

from muppet_core.data.prepare import prepare_task
from muppet_core.data.sources import hub_reachable_or_raise, mirror_files, source_fingerprint
from muppet_core.errors import DataSourceError
from muppet_core.tasks.catalog import get_task


def test_mirror_entry_resolves_only_when_every_file_exists(mirror, tmp_path):
    files = mirror_files(get_task("snli"), mirror)
    assert files["validation"]["premise"].endswith("snli/s1.dev")
    assert mirror_files(get_task("snli"), str(tmp_path)) is None
    assert mirror_files(get_task("snli"), None) is None


def test_fingerprint_changes_with_file_contents(mirror, tmp_path):
    (tmp_path / "rte").mkdir()
    for name in ("train.jsonl", "val.jsonl"):
        shutil.copy(f"{mirror}/rte/{name}", tmp_path / "rte" / name)
    spec = get_task("rte")
    assert source_fingerprint(spec, mirror) == source_fingerprint(spec, str(tmp_path))
    with open(tmp_path / "rte" / "val.jsonl", "ab") as fh:
        fh.write(b"\n")
    assert source_fingerprint(spec, mirror) != source_fingerprint(spec, str(tmp_path))


def test_a_hub_fingerprint_names_the_commit_and_offline_a_pinned_sha_is_taken_as_it_is(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    sha = "0123456789abcdef0123456789abcdef01234567"
    pinned = get_task("rte").model_copy(update={"hub": get_task("rte").hub.model_copy(update={"revision": sha})})
    assert source_fingerprint(pinned, None) == {"kind": "hub", "hub": get_task("rte").hub.model_dump(exclude={"revision"}), "revision": sha}
    with pytest.raises(DataSourceError, match="offline"):
        source_fingerprint(get_task("rte"), None)  # unpinned, offline and nothing cached: which commit is unknown


def test_unreachable_hub_gives_one_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    spec = get_task("rte")
    for attempt in (lambda: hub_reachable_or_raise(spec, str(tmp_path)), lambda: prepare_task(spec, str(tmp_path), 0.1, 0, tmp_path / "out")):
        with pytest.raises(DataSourceError) as info:
            attempt()
        message = str(info.value)
        assert "\n" not in message
        assert message.startswith("dataset 'rte' is not in the data mirror")
        assert "rte/train.jsonl" in message and "aps/super_glue (rte)" in message
        assert "MUPPET_DATA_MIRROR" in message and "hub reachable" in message
        assert info.value.__cause__ is None and info.value.__suppress_context__


def test_hub_source_gives_the_same_records_as_the_mirror(mirror, tmp_path):
    """The hub path (datasets.load_dataset) on a local dataset folder in the hub's layout."""
    import pandas as pd

    from muppet_core.data.prepare import load_split
    from muppet_core.tasks.catalog import HubSpec

    spec = get_task("sst2")
    prepare_task(spec, mirror, 0.1, 0, tmp_path / "from-mirror")
    hub_dir = tmp_path / "hub-sst2"
    hub_dir.mkdir()
    for split in ("train", "validation"):
        records = load_split(tmp_path / "from-mirror", "classification", split)
        pd.DataFrame({"sentence": [r.text_a for r in records], "label": [r.label for r in records]}).to_parquet(hub_dir / f"{split}.parquet")
    hub_spec = spec.model_copy(update={"mirror": {}, "hub": HubSpec(path=str(hub_dir), fields={"text_a": "sentence", "label": "label"})})
    stats = prepare_task(hub_spec, mirror, 0.1, 0, tmp_path / "from-hub")
    assert stats["source"] == "hub"
    for split in ("train", "validation"):
        ours = [(r.text_a, r.text_b, r.label) for r in load_split(tmp_path / "from-mirror", "classification", split)]
        theirs = [(r.text_a, r.text_b, r.label) for r in load_split(tmp_path / "from-hub", "classification", split)]
        assert ours == theirs
