"""s3:// backbones and stores through s3fs, against moto's S3 server on loopback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from muppet_core.artifacts.store import ArtifactStore
from muppet_core.models.backbone import load_encoder
from muppet_core.models.sources import backbone_fingerprint, resolve_backbone


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server on loopback, with credentials and endpoint in the environment."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()
        fs = s3fs.S3FileSystem()
        fs.mkdir("muppet-test")
        yield fs
    server.stop()


def test_backbone_from_s3_loads_and_fingerprints_like_the_local_copy(s3, tiny_backbone, tmp_path):
    s3.put(tiny_backbone.rstrip("/") + "/", "muppet-test/backbones/tiny/", recursive=True)
    local = resolve_backbone("s3://muppet-test/backbones/tiny", tmp_path)
    assert Path(local, "config.json").is_file() and Path(local).parent == tmp_path / "backbones"
    assert backbone_fingerprint(local) == backbone_fingerprint(tiny_backbone)
    encoder, tokenizer = load_encoder(local)
    assert encoder.config.num_hidden_layers == 2 and tokenizer.is_fast


def test_store_on_s3_publishes_and_fetches(s3, tmp_path):
    store = ArtifactStore("s3://muppet-test/store", cache_dir=str(tmp_path / "cache"))
    src = tmp_path / "src"
    src.mkdir()
    (src / "record.json").write_text('{"score": 0.5}')
    assert not store.has("finetune", "abc")
    store.publish("finetune", "abc", src)
    assert store.has("finetune", "abc") and store.read_json("finetune", "abc") == {"score": 0.5}
    assert (store.fetch("finetune", "abc") / "record.json").read_text() == '{"score": 0.5}'
    store.write_text("pipelines/demo/leaderboard.csv", "variant,a\nbase,1\n")
    assert store.read_text("pipelines/demo/leaderboard.csv").startswith("variant,a")


def test_mirror_on_s3_gives_the_same_records_as_the_local_mirror(s3, mirror, tmp_path):
    from muppet_core.data.prepare import load_split, prepare_task
    from muppet_core.tasks.catalog import get_task

    for name in ("s1.dev", "s2.dev", "labels.dev", "s1.test", "s2.test", "labels.test"):
        s3.put(f"{mirror}/snli/{name}", f"muppet-test/mirror/snli/{name}")
    spec = get_task("snli")
    local = prepare_task(spec, mirror, 0.1, 0, tmp_path / "local")
    remote = prepare_task(spec, "s3://muppet-test/mirror", 0.1, 0, tmp_path / "remote")
    assert remote["source"] == "mirror" and remote["rows"] == local["rows"]
    for split in local["rows"]:
        assert load_split(tmp_path / "local", "classification", split) == load_split(tmp_path / "remote", "classification", split)
