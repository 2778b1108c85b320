"""The fine-tune fan-out as the paper measured it: seeds, a learning-rate grid, the two experiments."""

from __future__ import annotations

import json
import time

import pandas as pd
import yaml

from tests.faults.report import Outcome, record
from tests.integration.conftest import artifact_keys

PRETRAIN = ["rotten_tomatoes", "trec", "commonsenseqa"]  # two families, data prepared in about a second (not SNLI's or SQuAD's seconds)


def _pipeline(path, backbone, mirror, store, name, finetune, prefinetune=None):
    doc = {"pipelines": {name: {
        "backbone": backbone, "store": str(store), "data": {"mirror": mirror},
        "prefinetune": {"tasks": PRETRAIN, "steps": 2, "micro_batch_size": 4, "tasks_per_step": 2, "max_length": 48,
                        "max_train_examples": 32, **(prefinetune or {})},
        "finetune": {"batch_size": 8, "max_length": 48, "max_train_examples": 16, "max_eval_examples": 24, **finetune},
    }}}
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def _records(store):
    return [json.loads(p.read_text()) for p in (store / "finetune").glob("*/record.json")]


def test_changing_one_seed_recomputes_only_that_seeds_runs(prefect_harness, tiny_backbone, mirror, tmp_path):
    from flows.reproduce import reproduce

    store = tmp_path / "store"
    finetune = {"benchmarks": ["sst2", "rte"], "seeds": [0, 1]}  # two benchmarks: the runs of each are cached apart
    base_only = {"enabled": False, "tasks": ["trec"]}  # the seeds' caching is the same for every variant: the base one alone
    config = _pipeline(tmp_path / "p.yaml", tiny_backbone, mirror, store, "grid", finetune, base_only)
    reproduce(pipeline="grid", config=config)
    before = artifact_keys(store, "finetune")
    assert len(before) == 2 * 2  # benchmarks x seeds, each its own cached task
    _pipeline(tmp_path / "p.yaml", tiny_backbone, mirror, store, "grid", {**finetune, "seeds": [0, 2]}, base_only)
    reproduce(pipeline="grid", config=config)
    after = artifact_keys(store, "finetune")
    assert {k: after[k] for k in before} == before  # nothing rewritten
    new = set(after) - set(before)
    records = {k: json.loads((store / "finetune" / k / "record.json").read_text()) for k in new}
    assert len(new) == 2 and {r["seed"] for r in records.values()} == {2}
    table = pd.read_csv(store / "pipelines" / "grid" / "leaderboard.csv", index_col="model")
    assert set(table["sst2.n"].dropna()) == {2.0}  # seeds 0 and 2 of the current grid


def test_learning_rate_grid_and_both_experiments(prefect_harness, tiny_backbone, mirror, tmp_path):
    from flows.reproduce import reproduce

    store = tmp_path / "store"
    finetune = {"benchmarks": ["rte"], "seeds": [0], "learning_rates": [1e-4, 3e-5], "train_fractions": [0.25, 0.5]}
    config = _pipeline(tmp_path / "p.yaml", tiny_backbone, mirror, store, "exp", finetune, {"task_counts": [2, 3]})
    reproduce(pipeline="exp", config=config)
    records = _records(store)
    main = [r for r in records if r["experiment"] is None]
    assert sorted((r["variant"], r["learning_rate"]) for r in main) == [("base", 3e-5), ("base", 1e-4), ("prefinetuned", 3e-5), ("prefinetuned", 1e-4)]
    efficiency = [r for r in records if r["experiment"] == "sample_efficiency"]
    # the grid selects, so a slice of train is held out for it first; the fractions take the rest
    kept = {r["variant"]: r["train_examples"] for r in main}
    assert all(r["selection_examples"] and r["train_examples"] + r["selection_examples"] == 16 for r in main)
    assert sorted((r["variant"], r["train_examples"]) for r in efficiency) == sorted(
        (v, max(1, round(f * kept[v]))) for v in kept for f in (0.25, 0.5)
    )
    counts = [r for r in records if r["experiment"] == "task_count"]
    assert sorted(r["prefinetune_tasks"] for r in counts) == [2, 3]
    assert len(artifact_keys(store, "prefinetune")) == 2  # all three tasks (shared with the main variant) and a nested pair
    published = store / "pipelines" / "exp"
    assert (published / "curves-sample_efficiency.png").stat().st_size > 1000
    assert (published / "curves-task_count.png").stat().st_size > 1000
    table = pd.read_csv(published / "leaderboard.csv", index_col="model")
    rows = table[table["variant"] != "delta"]
    assert len(rows) == 2 and rows["rte.note"].str.contains("the best of 2 on the selection slice of train").all()


def test_the_machines_slot_limit_follows_the_pipeline_names_its_holders_and_a_stop_ends_a_wait(prefect_harness, tmp_path, monkeypatch):
    import tempfile
    import threading

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

    from flows.slots import ensure_limit, finetune_slot, release_leaked
    from muppet_core.stopping import Stopped, clear_stop, request_stop

    # the machine's holder files, this test's own: the suite's other workers hold slots of their own servers meanwhile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    limit = ensure_limit(2)  # the runs above fine-tuned under it, and gave every slot back
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(limit).active_slots == 0
    assert ensure_limit(1) == limit  # a later pipeline's concurrency stands
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(limit).limit == 1

    holding, done, said, ended = threading.Event(), threading.Event(), [], []

    def hold() -> None:
        with finetune_slot("busy", "calm-lobster", "base/rte/seed0/lr3e-05"):
            holding.set()
            done.wait(60)

    def wait() -> None:
        try:
            with finetune_slot("work", "icy-peacock", "base/rte/seed2/lr3e-05", said.append):
                ended.append("got the slot")
        except Stopped as exc:
            ended.append(f"stopped: {exc}")

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(60)
    waiter = threading.Thread(target=wait)
    waiter.start()
    try:
        deadline = time.monotonic() + 60
        while not said and time.monotonic() < deadline:
            time.sleep(0.1)
        assert said and "held by pipeline busy (flow run 'calm-lobster'" in said[0] and "base/rte/seed0/lr3e-05 since" in said[0], said
        asked = time.monotonic()
        request_stop("SIGTERM")
        waiter.join(10)
        assert not waiter.is_alive() and ended == ["stopped: SIGTERM"] and time.monotonic() - asked < 3
    finally:
        clear_stop()
        done.set()
        holder.join(30)
        waiter.join(30)

    with get_client(sync_client=True) as client:  # a slot whose holder was killed with its temporary server
        assert client.read_global_concurrency_limit_by_name(limit).active_slots == 0
        client.update_global_concurrency_limit(limit, GlobalConcurrencyLimitUpdate(active_slots=1))
        slots, seen = release_leaked(client, limit, None)
        assert slots == 1 and client.read_global_concurrency_limit_by_name(limit).active_slots == 1  # one look is not enough
        release_leaked(client, limit, seen)
        assert client.read_global_concurrency_limit_by_name(limit).active_slots == 0
    record(Outcome("signal", "the machine's fine-tune limit set by one pipeline (2), then another (1); a slot taken while another run holds the only one, then SIGTERM; a slot leaked by a SIGKILLed run",
                   "the limit follows the later pipeline; the wait names the holder at once and ends within 3 s of SIGTERM; the leaked slot is given back after two looks"))


def test_a_stopped_deployment_fan_out_cancels_its_flow_runs_on_the_pool(prefect_harness, tiny_backbone, tmp_path, monkeypatch):
    """A run stopped while its fine-tunes wait on a work pool (no worker here, so they stay scheduled)
    cancels them: no worker picks them up after the run is gone."""
    import threading

    import pytest
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    import flows.finetune_remote as remote
    from muppet_core.artifacts.stage import StageOutput
    from muppet_core.artifacts.store import ArtifactStore
    from muppet_core.config import FinetuneConfig
    from muppet_core.models.backbone import Variant
    from muppet_core.stopping import Stopped, clear_stop, request_stop
    from muppet_core.training.finetune import FinetuneRun

    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name="idle", type="process"), overwrite=True)
    monkeypatch.setattr(remote, "check_executor", lambda config, store: remote._ensure_deployment("idle"))  # a local store, for once
    config = FinetuneConfig(benchmarks=["rte"], executor={"kind": "deployment", "work_pool": "idle", "chunk": 1})
    runs = [FinetuneRun(Variant("base", "tiny", tiny_backbone), "rte", seed, 3e-5) for seed in (0, 1)]
    data = [StageOutput("data", "rte", "k", "", True)] * 2
    said: list[str] = []
    threading.Timer(2.0, request_stop, args=("SIGTERM",)).start()  # once both flow runs are submitted
    try:
        with pytest.raises(Stopped):
            remote.finetune_on_workers("p", runs, data, config, ArtifactStore(str(tmp_path / "store")), log_line=said.append)
    finally:
        clear_stop()
    assert said[-1] == "cancelled 2 fine-tune flow run(s) on the work pool", said
    with get_client(sync_client=True) as client:
        flow_runs = [r for r in client.read_flow_runs(limit=50) if r.work_pool_name == "idle"]
    assert len(flow_runs) == 2 and {r.state.type.value for r in flow_runs} <= {"CANCELLING", "CANCELLED"}, [r.state for r in flow_runs]
    record(Outcome("signal", "SIGTERM to a run whose 2 fine-tune flow runs wait on a work pool (deployment executor)",
                   "both flow runs cancelled on the pool ('cancelled 2 fine-tune flow run(s) on the work pool'): no worker takes them after the run is gone"))


def test_the_crash_automation_counts_silence_from_a_run_s_start_and_replaces_an_older_one(prefect_harness):
    """The automation that marks a silent fine-tune flow run Crashed counts from the run's start as well as
    from its last heartbeat (a worker killed before its run's first heartbeat reached the server left the
    run Running for ever: tests/integration/test_finetune_deployment.py shows it on a live run). A server
    that holds the automation as earlier versions made it (heartbeats only) gets it replaced, once."""
    from prefect.automations import Automation
    from prefect.events.actions import DoNothing
    from prefect.events.schemas.automations import EventTrigger, Posture

    from flows.finetune_remote import CRASH_AUTOMATION, _ensure_crash_automation

    try:
        Automation.read(name=CRASH_AUTOMATION).delete()
    except ValueError:
        pass
    Automation(name=CRASH_AUTOMATION, trigger=EventTrigger(after={"prefect.flow-run.heartbeat"}, expect={"prefect.flow-run.heartbeat"},
               posture=Posture.Proactive, within=60), actions=[DoNothing()]).create()
    _ensure_crash_automation()
    replaced = Automation.read(name=CRASH_AUTOMATION)
    assert set(replaced.trigger.after) == {"prefect.flow-run.heartbeat", "prefect.flow-run.Running"}
    assert replaced.actions[0].type == "change-flow-run-state"
    _ensure_crash_automation()
    assert Automation.read(name=CRASH_AUTOMATION).id == replaced.id  # kept as it is
