"""The fan-out's ``deployment`` executor on the production stack: the Prefect server on PostgreSQL,
SeaweedFS as the store, and two `prefect worker start --type process` workers, each in a folder of
its own with its own HOME and cache (two "machines"). Six tiny fine-tunes run as flow runs of the
``muppet-finetune`` deployment, three per run; the flow-run records show both workers ran them, and the
leaderboard equals the in-process run's cell for cell. Then one worker is SIGKILLed (with its flow
run) while it holds a fine-tune: its flow run is marked Crashed, submitted again, and the pipeline
completes with the same leaderboard, every artifact matching its manifest."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from muppet_core.artifacts.store import MANIFEST, ArtifactStore
from muppet_core.server import LocalServer
from tests.bench.test_benchmarks import check_fanout, run_bench
from tests.conftest import REPO
from tests.faults.report import Outcome, record
from tests.integration.conftest import BENCHMARKS, UNTRAINED_TASKS, write_pipeline
from tests.servers.postgres import prefect_url
from tests.servers.process import free_ports
from tests.servers.seaweed import BUCKET

POOL = "fanout"
WORKERS = ("worker-a", "worker-b")
PIPELINE = "fan"
FINETUNE = {"seeds": [0, 1, 2], "concurrency": 1, "max_train_examples": 24, "max_eval_examples": 24}
VARYING = ["computed_at", "run"]  # when and in which flow run a row was computed
ARTIFACTS = {"data": len(UNTRAINED_TASKS) + len(BENCHMARKS), "finetune": 6, "leaderboard": 1}  # the data stage prepares every task named


def prefect(*args: str, env: dict) -> subprocess.CompletedProcess:
    """The `prefect` command, as an operator types it."""
    done = subprocess.run([str(Path(sys.executable).with_name("prefect")), *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done


class Worker:
    """`prefect worker start --pool POOL --type process` in a folder of its own (its cwd, HOME and MUPPET_CACHE)."""

    def __init__(self, name: str, root: Path, env: dict):
        self.name, self.root = name, root
        for sub in ("home", "cache"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self.log = open(root / "worker.log", "w")
        env = {**env, "HOME": str(root / "home"), "MUPPET_CACHE": str(root / "cache"), "PREFECT_HOME": str(root / "home" / ".prefect")}
        self.process = subprocess.Popen(
            [str(Path(sys.executable).with_name("prefect")), "worker", "start", "--pool", POOL, "--type", "process", "--name", name, "--limit", "1"],
            cwd=root, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL the worker's process group and every process under it (its flow run's too): a lost machine."""
        import psutil

        tree = psutil.Process(self.process.pid).children(recursive=True)
        os.killpg(self.process.pid, signal.SIGKILL)
        for child in tree:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.kill()
        self.log.close()


@pytest.fixture(scope="module")
def stack(postgres, seaweed, tmp_path_factory):
    """The Prefect server on PostgreSQL, the work pool and its two workers: (api url, env for clients, workers)."""
    root = tmp_path_factory.mktemp("deployment-stack")
    server = LocalServer(free_ports(1)[0], home=root / "prefect", log=root / "server.log", database_url=prefect_url(postgres())).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(server.environment(), **seaweed.env(), PREFECT_WORKER_QUERY_SECONDS="1", OMP_NUM_THREADS="1",
               PREFECT_LOGGING_TO_API_BATCH_INTERVAL="0.5")  # a flow run's log reaches the server within half a second
    workers = []
    try:
        prefect("work-pool", "create", POOL, "--type", "process", env=env)
        workers = [Worker(name, root / name, env) for name in WORKERS]
        deadline = time.monotonic() + 120
        while {w["name"] for w in httpx.post(f"{server.api_url}/work_pools/{POOL}/workers/filter", json={}, timeout=10).json()} != set(WORKERS):
            assert time.monotonic() < deadline, "the workers did not come up: " + "; ".join((root / n / "worker.log").read_text()[-500:] for n in WORKERS)
            time.sleep(1)
        yield server.api_url, env, dict(zip(WORKERS, workers))
    finally:
        for worker in workers:
            worker.stop()
        server.stop()


@pytest.fixture(scope="module")
def in_process_board(prefect_harness, tiny_backbone, mirror, tmp_path_factory) -> pd.DataFrame:
    """The same pipeline's leaderboard with its fine-tunes as threads of this process, one at a time."""
    from flows.reproduce import reproduce

    root = tmp_path_factory.mktemp("deployment-reference")
    config = write_pipeline(root / "p.yaml", tiny_backbone, mirror, root / "store", seeds=[0], name=PIPELINE, prefinetune=False,
                            finetune={**FINETUNE, "executor": {"kind": "thread", "threads": 1}})
    reproduce(pipeline=PIPELINE, config=str(config))
    return pd.read_csv(root / "store" / "pipelines" / PIPELINE / "leaderboard.csv", index_col="model")


def run_pipeline(stack, tiny_backbone, mirror, root: Path, store: str, chunk: int, while_running=None) -> subprocess.CompletedProcess:
    """`muppet run` of the pipeline with ``executor: deployment`` on the stack; ``while_running(process)`` is called once it started."""
    api, env, _ = stack
    config = write_pipeline(root / "p.yaml", tiny_backbone, mirror, store, seeds=[0], name=PIPELINE, prefinetune=False,
                            finetune={**FINETUNE, "executor": {"kind": "deployment", "work_pool": POOL, "chunk": chunk, "retries": 1, "threads": 1}})
    command = [sys.executable, "-m", "flows.cli", "run", PIPELINE, "--config", str(config)]
    env = {**env, "MUPPET_CACHE": str(root / "cache")}
    with subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as parent:
        if while_running:
            while_running(parent)
        try:
            out, _ = parent.communicate(timeout=900)
        except subprocess.TimeoutExpired:
            parent.kill()  # else leaving the block waits for it without end
            out, _ = parent.communicate()
            pytest.fail(f"`muppet run` did not end in 900 s:\n{out[-5000:]}")
    assert parent.returncode == 0, out[-5000:]
    return out


def finetune_runs(api: str) -> list[dict]:
    """Every flow run of the work pool's muppet-finetune deployment, oldest first."""
    runs = httpx.post(f"{api}/flow_runs/filter", json={"flow_runs": {"tags": {"all_": ["muppet-finetune"]}}, "sort": "START_TIME_ASC"}, timeout=10).json()
    return [r for r in runs if r.get("work_pool_name") == POOL]


def started_a_fine_tune(api: str, flow_run_id: str) -> bool:
    logs = httpx.post(f"{api}/logs/filter", json={"logs": {"flow_run_id": {"any_": [flow_run_id]}}}, timeout=10).json()
    return any(line["message"].startswith("fine-tune ") for line in logs)


def silent_run(api: str) -> str:
    """A flow run of the work pool's deployment that no worker holds, set Running through the API and never
    heard from again (no heartbeat ever reaches the server): as a run whose worker died before its first
    heartbeat was delivered. Its id."""
    deployment = httpx.get(f"{api}/deployments/name/muppet-finetune/{POOL}", timeout=10).raise_for_status().json()
    run = httpx.post(f"{api}/deployments/{deployment['id']}/create_flow_run", timeout=10,
                     json={"state": {"type": "PENDING", "name": "Pending"}, "parameters": {"jobs": []}}).raise_for_status().json()
    httpx.post(f"{api}/flow_runs/{run['id']}/set_state", json={"state": {"type": "RUNNING", "name": "Running"}, "force": True},
               timeout=10).raise_for_status()
    return run["id"]


def board(seaweed, store: str) -> pd.DataFrame:
    with seaweed.fs().open(f"{store.removeprefix('s3://')}/pipelines/{PIPELINE}/leaderboard.csv") as f:
        return pd.read_csv(f, index_col="model")


def verified_artifacts(store: str) -> dict[str, int]:
    """Every artifact of the store, each fetched and checked against its manifest: their count by stage."""
    s = ArtifactStore(store)
    counts: dict[str, int] = {}
    for manifest in s.backend.fs.glob(f"{store.removeprefix('s3://')}/*/*/{MANIFEST}"):
        stage, key = manifest.split("/")[-3:-1]
        s.fetch(stage, key)  # raises on a file missing or not matching its sha256
        counts[stage] = counts.get(stage, 0) + 1
    return counts


def test_two_workers_run_the_fine_tunes_and_the_leaderboard_equals_in_process(stack, in_process_board, seaweed, tiny_backbone, mirror, tmp_path):
    api = stack[0]
    store = f"s3://{BUCKET}/deployment-store"
    run_pipeline(stack, tiny_backbone, mirror, tmp_path, store, chunk=3)  # two flow runs: one for each worker (each takes one at a time)
    runs = finetune_runs(api)
    assert len(runs) == 2 and {r["state_type"] for r in runs} == {"COMPLETED"}
    assert sorted(len(r["parameters"]["jobs"]) for r in runs) == [3, 3]
    assert {r["labels"]["prefect.worker.name"] for r in runs} == set(WORKERS)  # both "machines" fine-tuned
    ours = board(seaweed, store)
    pd.testing.assert_frame_equal(ours.drop(columns=VARYING), in_process_board.drop(columns=VARYING))
    assert verified_artifacts(store) == ARTIFACTS


def test_the_fanout_benchmark_measures_what_a_flow_run_costs_beyond_a_process(stack, tiny_backbone, mirror):
    """bench/fanout.py at its tiny size (tests/bench's) with --work-pool: every figure it promises, the
    deployment run's records equal the concurrency-1 run's, and its cost per run beyond the process
    executor is a figure."""
    _, env, _ = stack
    figures = run_bench("fanout.py", tiny_backbone, mirror, "--work-pool", POOL, "--store", f"s3://{BUCKET}/bench", env=env)
    check_fanout(figures, tiny_backbone)  # the bench's own check of its figures (tests/bench runs it only here)
    assert figures["identical"] is True and figures["failed"] == [] and figures["runs"] == 2
    assert figures["process_overhead_s"] > 0  # a process start, at the least
    assert figures["process_overhead_s"] + figures["deployment_overhead_s"] > 0  # a flow run's own overhead: a start, at the least


def test_a_killed_worker_s_fine_tunes_are_submitted_again_and_the_leaderboard_is_the_same(
    stack, in_process_board, seaweed, tiny_backbone, mirror, tmp_path
):
    api, _, workers = stack
    store = f"s3://{BUCKET}/deployment-kill-store"
    before = {r["id"] for r in finetune_runs(api)}
    killed: list[dict] = []
    silent: list[tuple[str, float]] = []

    def kill_when_busy(parent: subprocess.Popen) -> None:
        """SIGKILL worker-a once its flow run has started a fine-tune (it says so in the run's log); at
        the same moment a run that never sends a heartbeat starts (``silent_run``)."""
        deadline = time.monotonic() + 600
        while not killed and parent.poll() is None and time.monotonic() < deadline:
            held = [r for r in finetune_runs(api) if r["id"] not in before and r["state_type"] == "RUNNING"
                    and r["labels"].get("prefect.worker.name") == WORKERS[0]]
            if held and started_a_fine_tune(api, held[0]["id"]):
                workers[WORKERS[0]].kill()
                killed.append(held[0])
                silent.append((silent_run(api), time.monotonic()))
            time.sleep(0.5)

    out = run_pipeline(stack, tiny_backbone, mirror, tmp_path, store, chunk=3, while_running=kill_when_busy)
    assert killed, "worker-a never held a fine-tune"
    # The run no heartbeat of which reached the server is Crashed too (counted from its start), not Running for ever.
    (ghost, since), state = silent[0], {}
    while time.monotonic() < since + 3 * 60 and state.get("state_type") != "CRASHED":
        time.sleep(2)
        state = httpx.get(f"{api}/flow_runs/{ghost}", timeout=10).json()
    assert state["state_type"] == "CRASHED" and "heartbeat" in state["state"]["message"], (state.get("state_type"), time.monotonic() - since)
    runs = [r for r in finetune_runs(api) if r["id"] not in before and r["id"] != ghost]
    (crashed,) = [r for r in runs if r["id"] == killed[0]["id"]]
    assert crashed["state_type"] == "CRASHED" and "heartbeat" in crashed["state"]["message"]
    assert "again from" in out and "(1 of 1)" in out
    jobs = {j["output"] for j in crashed["parameters"]["jobs"]}
    again = [r for r in runs if r["id"] != crashed["id"] and {j["output"] for j in r["parameters"]["jobs"]} <= jobs]
    assert [r["state_type"] for r in again] == ["COMPLETED"] and again[0]["labels"]["prefect.worker.name"] == WORKERS[1]
    pd.testing.assert_frame_equal(board(seaweed, store).drop(columns=VARYING), in_process_board.drop(columns=VARYING))
    assert verified_artifacts(store) == ARTIFACTS
    record(Outcome("kill", "SIGKILL of a process worker and its flow run during a chunk of three fine-tunes (executor: deployment, chunk: 3, retries: 1)",
                   f"its flow run was marked Crashed ({crashed['state']['message']}), submitted again to the other worker; same leaderboard, every artifact "
                   "verified; a flow run set Running that never sent a heartbeat was marked Crashed as well"))
