"""An authenticated Prefect server, as `muppet serve --with-server` starts it by default: it generates
an auth string into an owner-only file and never prints it; the API refuses requests without it
(HTTP 401), the websockets refuse clients without it, the UI asks for it before it shows anything,
`muppet` commands on this machine and the serving worker use it, and the compose stack's TLS proxy
(docker/Caddyfile, run with the caddy binary) carries it, with the websockets, to the server.

The served pipeline's store starts as a copy of the session's tiny run, so the triggered run takes
every stage from the store and the test spends its time on the server, not on training.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from playwright.sync_api import Page, expect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from muppet_core.models.labels import backbone_label
from tests.browser import chromium, new_page, screenshot, shows
from tests.conftest import REPO
from tests.integration.conftest import write_pipeline
from tests.servers.caddy import CaddyProxy
from tests.servers.seaweed import free_ports
from tests.servers.serving import stop_serving, wait_for_deployment

PIPELINE = "secure"
OTHER = "secure-deployed"  # registered by `muppet deploy`, which finds the auth string itself
POOL = "secure-pool"
DEPLOYMENT = f"muppet-reproduce/{PIPELINE}"
WRONG = "muppet:not-the-auth-string"


def basic(auth_string: str) -> dict[str, str]:
    """The header a Prefect client sends."""
    return {"Authorization": "Basic " + base64.b64encode(auth_string.encode()).decode()}


@dataclass
class Secured:
    root: Path
    api: str
    ui: str
    auth: str
    env: dict[str, str]
    """The environment of a client of this server that holds no auth string."""
    config: Path


@pytest.fixture(scope="module")
def secured(first_run, tiny_backbone, mirror, tmp_path_factory):
    """`muppet serve --with-server` with no auth string in its environment, serving one pipeline."""
    root = tmp_path_factory.mktemp("server-auth")
    shutil.copytree(first_run[0] / "store", root / "store")  # every stage of the run is in the store
    config = write_pipeline(root / "pipelines.yaml", tiny_backbone, mirror, root / "store", seeds=[0], name=PIPELINE)
    doc = yaml.safe_load(config.read_text())
    doc["pipelines"][OTHER] = doc["pipelines"][PIPELINE]
    config.write_text(yaml.safe_dump(doc))

    port = free_ports(1)[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "PREFECT_SERVER_API"))}
    env.update(PREFECT_HOME=str(root / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false", MUPPET_CACHE=str(root / "cache"),
               PREFECT_RUNNER_POLL_FREQUENCY="2")  # a triggered run starts within 2 s, not 10
    log = open(root / "serve.log", "w")
    serve = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "serve", PIPELINE, "--with-server", "--port", str(port),
         "--config", str(config), "--server-log", str(root / "server.log")],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    api, saved = f"http://127.0.0.1:{port}/api", root / "prefect" / "muppet-server-auth"
    try:
        wait_for_deployment(api, DEPLOYMENT, serve, root / "serve.log", headers=lambda: basic(saved.read_text().strip()) if saved.is_file() else {})
        yield Secured(root, api, f"http://127.0.0.1:{port}", saved.read_text().strip(), {**env, "PREFECT_API_URL": api}, config)
    finally:
        stop_serving(serve)  # serve stops the server it started
        log.close()


@pytest.fixture(scope="module")
def proxy(secured):
    """docker/Caddyfile's TLS proxy in front of the server."""
    caddy = CaddyProxy(secured.root / "caddy", upstream=secured.api.split("//")[1].split("/")[0]).start()
    yield caddy
    caddy.stop()


@pytest.fixture(scope="module")
def deployed(secured):
    """`muppet deploy --work-pool` against the local server, with no auth string in its environment, run
    in the config's folder and given its relative path, as an operator types it there."""
    httpx.post(f"{secured.api}/work_pools/", json={"name": POOL, "type": "process"}, headers=basic(secured.auth), timeout=10).raise_for_status()
    return subprocess.run([sys.executable, "-m", "flows.cli", "deploy", OTHER, "--work-pool", POOL, "--config", secured.config.name],
                          cwd=secured.root, env={**secured.env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300)


def websocket(url: str, message: dict | None, subprotocol: bool = True, **kwargs) -> str:
    """What a websocket client gets from the server: ``refused HTTP <status>`` (the handshake),
    ``closed <code> <reason>`` or the first message."""
    try:
        with connect(url, subprotocols=["prefect"] if subprotocol else None, open_timeout=10, **kwargs) as ws:
            if message is not None:
                ws.send(json.dumps(message))
            return ws.recv(timeout=10)
    except InvalidStatus as exc:
        return f"refused HTTP {exc.response.status_code}"
    except ConnectionClosed as exc:
        return f"closed {exc.rcvd.code} {exc.rcvd.reason}" if exc.rcvd else "closed"


def test_the_auth_string_is_generated_into_an_owner_only_file_and_never_printed(secured):
    saved = secured.root / "prefect" / "muppet-server-auth"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert re.fullmatch(r"muppet:[A-Za-z0-9_-]{43}", secured.auth)
    output = (secured.root / "serve.log").read_text()
    assert f"auth string: muppet:*** (generated into {saved}, readable by its owner only)" in output
    assert f'export PREFECT_API_AUTH_STRING="$(cat {saved})"' in output
    for log in ("serve.log", "server.log"):
        assert secured.auth.split(":")[1] not in (secured.root / log).read_text(), log


def test_the_api_refuses_every_request_without_the_auth_string(secured):
    deployment = httpx.get(f"{secured.api}/deployments/name/{DEPLOYMENT}", headers=basic(secured.auth), timeout=10).json()
    requests = [  # read, start, cancel, delete
        ("GET", f"/deployments/name/{DEPLOYMENT}", None), ("POST", "/flow_runs/filter", {}), ("POST", "/logs/filter", {}),
        ("POST", f"/deployments/{deployment['id']}/create_flow_run", {}), ("POST", "/deployments/filter", {}),
        ("DELETE", f"/deployments/{deployment['id']}", None), ("GET", "/admin/version", None),
    ]
    for method, path, body in requests:
        for headers in ({}, basic(WRONG), {"Authorization": f"Bearer {secured.auth}"}):
            response = httpx.request(method, secured.api + path, json=body, headers=headers, timeout=10)
            assert response.status_code == 401, (method, path, headers.keys(), response.status_code)
    assert httpx.get(f"{secured.api}/deployments/{deployment['id']}", headers=basic(secured.auth), timeout=10).status_code == 200
    assert httpx.post(f"{secured.api}/flow_runs/filter", json={}, headers=basic(secured.auth), timeout=10).json() == []  # nothing was started
    assert httpx.get(f"{secured.api}/health", timeout=10).status_code == 200  # left open for health checks


def test_the_websockets_refuse_clients_without_the_auth_string(secured):
    """Prefect issue #17687 (3.2.14: /events/out let anyone in) is closed in 3.9.1: every socket
    checks the auth message, and a client without the "prefect" subprotocol is refused outright."""
    base = secured.api.replace("http://", "ws://")
    for path in ("/events/out", "/events/in", "/logs/out"):
        assert websocket(base + path, {"type": "auth", "token": None}, subprotocol=False) == "refused HTTP 403", path
        assert websocket(base + path, {"type": "auth", "token": None}) == "closed 1008 Auth required but no token provided", path
        assert websocket(base + path, {"type": "auth", "token": WRONG}) == "closed 1008 Invalid token", path
        assert websocket(base + path, {"type": "filter", "filter": {}}) == "closed 1008 Expected 'auth' message", path
        assert websocket(base + path, {"type": "auth", "token": None}, additional_headers=basic(secured.auth)) == \
            "closed 1008 Auth required but no token provided", path  # the header alone does not do
        assert json.loads(websocket(base + path, {"type": "auth", "token": secured.auth})) == {"type": "auth_success"}, path


def test_muppet_commands_on_this_machine_find_the_auth_string(secured, deployed):
    assert deployed.returncode == 0, deployed.stdout[-2000:] + deployed.stderr[-2000:]
    assert f"deployed muppet-reproduce/{OTHER} on work pool '{POOL}'" in deployed.stdout
    assert httpx.get(f"{secured.api}/deployments/name/muppet-reproduce/{OTHER}", headers=basic(secured.auth), timeout=10).status_code == 200


def test_a_pool_deployment_names_its_config_by_the_absolute_path(secured, deployed):
    """A worker starts a run in a folder of its own: the relative path typed would be read there."""
    deployment = httpx.get(f"{secured.api}/deployments/name/muppet-reproduce/{OTHER}", headers=basic(secured.auth), timeout=10).json()
    assert deployment["work_pool_name"] == POOL
    assert deployment["parameters"]["config"] == str(secured.config)


def log_in(page: Page, auth: str) -> None:
    """Type ``auth`` into the UI's login prompt, as a person does, and submit it."""
    page.locator("input[type=password]").fill(auth)
    page.locator("button[type=submit]").click()


def test_the_ui_asks_for_the_auth_string_before_it_shows_the_deployments(secured, deployed):
    with chromium() as browser:
        page = new_page(browser)
        page.goto(secured.ui)
        expect(page.locator("input[type=password]")).to_be_visible()
        assert "/login" in page.url
        screenshot(page, "auth-login")
        assert "muppet-reproduce" not in page.locator("body").inner_text()

        log_in(page, WRONG)
        shows(page, "Invalid credentials")
        log_in(page, secured.auth)
        page.wait_for_url(lambda url: "/login" not in url)

        page.goto(f"{secured.ui}/v2/deployments")
        shows(page, PIPELINE, OTHER, "reproduce")
        screenshot(page, "auth-deployments")


def test_the_tls_proxy_carries_the_auth_string_and_the_websockets(secured, proxy):
    api, tls = f"{proxy.url}/api", proxy.ssl_context()
    assert httpx.post(f"{api}/deployments/filter", json={}, verify=tls, timeout=10).status_code == 401
    assert [d["name"] for d in httpx.post(f"{api}/deployments/filter", json={}, headers=basic(secured.auth), verify=tls, timeout=10).json()]
    with pytest.raises(httpx.ConnectError):  # a client that does not trust the proxy's CA does not talk to it
        httpx.get(f"{api}/health", timeout=10)
    wss = api.replace("https://", "wss://")
    assert websocket(wss + "/events/out", {"type": "auth", "token": None}, ssl=tls) == "closed 1008 Auth required but no token provided"
    assert json.loads(websocket(wss + "/events/out", {"type": "auth", "token": secured.auth}, ssl=tls)) == {"type": "auth_success"}


def test_a_deployment_run_completes_through_a_worker_that_holds_the_auth_string(secured, proxy, tiny_backbone):
    prefect = str(Path(sys.executable).with_name("prefect"))
    refused = subprocess.run([prefect, "deployment", "run", DEPLOYMENT], cwd=REPO, env=secured.env,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "401" in refused.stdout + refused.stderr, refused.stdout[-2000:] + refused.stderr[-2000:]

    # an operator on another host: through the TLS proxy, with the string
    remote = {**secured.env, "PREFECT_API_URL": f"{proxy.url}/api", "PREFECT_API_SSL_CERT_FILE": str(proxy.ca_file),
              "PREFECT_API_AUTH_STRING": secured.auth}
    done = subprocess.run([prefect, "deployment", "run", DEPLOYMENT, "--watch", "--watch-timeout", "600"], cwd=REPO, env=remote,
                          capture_output=True, text=True, timeout=660)
    assert done.returncode == 0, f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}\n{(secured.root / 'serve.log').read_text()[-3000:]}"
    run_id = re.search(r"UUID: ([0-9a-f-]{36})", done.stdout).group(1)

    def post(path: str, body: dict) -> list[dict]:
        return httpx.post(f"{secured.api}{path}", json=body, headers=basic(secured.auth), timeout=10).json()

    run = httpx.get(f"{secured.api}/flow_runs/{run_id}", headers=basic(secured.auth), timeout=10).json()
    assert run["state"]["type"] == "COMPLETED"
    # the worker's task-run states reached the server over the events websocket (Prefect issue #22812)
    task_runs = post("/task_runs/filter", {"flow_runs": {"id": {"any_": [run_id]}}})
    assert task_runs and {t["state"]["type"] for t in task_runs} == {"COMPLETED"}
    assert post("/logs/filter", {"logs": {"flow_run_id": {"any_": [run_id]}}})  # and its logs over HTTP
    (table,) = post("/artifacts/filter", {"artifacts": {"key": {"any_": [f"leaderboard-{PIPELINE}-table"]}}})
    assert len(json.loads(table["data"])) >= 2
    # nowhere in the worker's output, the server's log, or what the run recorded on the server
    recorded = json.dumps([run, task_runs, post("/logs/filter", {}), post("/artifacts/filter", {}), post("/deployments/filter", {})])
    for where, text in (("serve.log", (secured.root / "serve.log").read_text()), ("server.log", (secured.root / "server.log").read_text()),
                        ("the server's records", recorded)):
        assert secured.auth.split(":")[1] not in text, where


def test_a_run_started_from_the_ui_run_form_completes_and_its_leaderboard_artifact_shows_both_rows(secured, tiny_backbone):
    """A person in the UI: log in, the deployment's Run > Custom run, `backbones` typed into the form's
    list field, Submit, the run until Completed, then its leaderboard subflow's artifact."""
    with chromium() as browser:
        page = new_page(browser)
        page.goto(secured.ui)
        log_in(page, secured.auth)
        page.get_by_role("link", name="Deployments", exact=True).click()
        page.get_by_role("link", name=PIPELINE, exact=True).click()
        page.get_by_role("button", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Custom run").click()

        # the flow's parameters as typed fields, holding the deployment's defaults
        expect(page.get_by_role("textbox", name="pipeline (Optional)")).to_have_value(PIPELINE)
        expect(page.get_by_role("switch", name="finetune (Optional)")).to_be_checked()
        for kind in ("list", "str", "bool"):  # backbones, store, prefinetune: a value or None
            expect(page.get_by_role("tab", name=kind, exact=True)).to_be_visible()
        page.get_by_role("tab", name="list", exact=True).click()
        page.get_by_role("tabpanel", name="list").get_by_role("button", name="Add item").click()
        page.get_by_role("tabpanel", name="list").get_by_role("textbox").fill(tiny_backbone)
        screenshot(page, "ui-run-form")
        page.get_by_role("button", name="Submit").click()

        toast = page.get_by_role("listitem").filter(has_text="scheduled to start now")
        run_name = toast.inner_text().split(" scheduled to start now")[0]
        toast.get_by_role("link", name="View run").click()
        expect(page.get_by_role("navigation", name="breadcrumb").filter(has_text=run_name).first).to_be_visible()  # the run's page
        expect(page.get_by_text("Completed", exact=True)).to_be_visible(timeout=600_000)  # its state
        run_id = page.url.split("?")[0].rsplit("/", 1)[1]
        screenshot(page, "ui-run-completed")
        page.get_by_role("tab", name="Subflow Runs").click()
        page.get_by_role("listitem").filter(has=page.get_by_role("link", name="leaderboard", exact=True)).get_by_role("link").nth(1).click()
        page.get_by_role("tab", name="Artifacts").click()
        page.get_by_role("link").filter(has=page.get_by_role("heading", name=f"leaderboard-{PIPELINE}", exact=True)).click()
        shows(page, f"Leaderboard: {PIPELINE}")
        first_cells = page.locator("table").first.locator("tbody tr td:first-child")
        expect(first_cells).to_have_count(2)  # the leaderboard table's rows: base and pre-finetuned
        rows = [first_cells.nth(i).inner_text() for i in range(2)]  # each waits for its cell (the table may re-render)
        screenshot(page, "ui-run-leaderboard")

    run = httpx.get(f"{secured.api}/flow_runs/{run_id}", headers=basic(secured.auth), timeout=10).json()
    assert run["name"] == run_name and run["state"]["type"] == "COMPLETED" and run["parameters"]["backbones"] == [tiny_backbone]
    assert run["deployment_id"] == httpx.get(f"{secured.api}/deployments/name/{DEPLOYMENT}", headers=basic(secured.auth), timeout=10).json()["id"]
    history = [json.loads(p.read_text()) for p in (secured.root / "store" / "pipelines" / PIPELINE / "history").glob("*.json")]
    assert run_id in [entry["run"] for entry in history]  # this run published the leaderboard
    label = backbone_label(tiny_backbone)
    stored = json.loads((secured.root / "store" / "pipelines" / PIPELINE / "leaderboard.json").read_text())["rows"]
    assert sorted(r["model"] for r in stored) == [f"{label} / base", f"{label} / prefinetuned"], stored
    assert sorted(r.removesuffix(" ◆") for r in rows) == [f"{label} / base", f"{label} / prefinetuned"], rows
