"""muppet_core.auth: the auth string of a local server comes from the environment or a file written
once, readable by its owner only, and is never shown in full; commands take it from that file only
for a server on this machine."""

from __future__ import annotations

import os
import stat

import pytest

from muppet_core.auth import CLIENT_VAR, SERVER_VAR, auth_file, masked, resolve_auth_string, use_saved_auth_string
from muppet_core.errors import MuppetError
from muppet_core.server import LocalServer


def test_a_new_string_is_generated_once_into_an_owner_only_file(tmp_path):
    env = {"PREFECT_HOME": str(tmp_path / "home")}
    first = resolve_auth_string(env)
    path = auth_file(env)
    assert first.path == path and "generated into" in first.source
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    user, _, secret = first.value.partition(":")
    assert user == "muppet" and len(secret) >= 43  # 32 random bytes, URL-safe base64
    again = resolve_auth_string(env)
    assert again.value == first.value and again.source == f"read from {path}"
    assert first.value not in str(first) + repr(first) + str(again) + repr(again)
    assert str(first).startswith("muppet:*** (")


def test_the_environment_wins_and_two_different_strings_are_refused(tmp_path):
    home = str(tmp_path / "home")
    assert resolve_auth_string({"PREFECT_HOME": home, CLIENT_VAR: "ops:from-env"}).value == "ops:from-env"
    assert resolve_auth_string({"PREFECT_HOME": home, SERVER_VAR: "ops:server"}).source == f"from {SERVER_VAR}"
    assert not auth_file({"PREFECT_HOME": home}).exists()
    with pytest.raises(MuppetError, match="differ"):
        resolve_auth_string({"PREFECT_HOME": home, CLIENT_VAR: "a:1", SERVER_VAR: "b:2"})
    with pytest.raises(MuppetError, match="printable ASCII"):
        resolve_auth_string({"PREFECT_HOME": home, CLIENT_VAR: "ops:with space"})


def test_a_file_others_can_read_is_refused(tmp_path):
    env = {"PREFECT_HOME": str(tmp_path)}
    resolve_auth_string(env)
    os.chmod(auth_file(env), 0o644)
    with pytest.raises(MuppetError, match="chmod 600"):
        resolve_auth_string(env)


def test_commands_take_the_saved_string_only_for_a_server_on_this_machine(tmp_path):
    saved = resolve_auth_string({"PREFECT_HOME": str(tmp_path)}).value
    for url in ("http://127.0.0.1:4200/api", "http://localhost:4200/api", "http://[::1]:4200/api"):
        env = {"PREFECT_HOME": str(tmp_path), "PREFECT_API_URL": url}
        assert use_saved_auth_string(env) and env[CLIENT_VAR] == saved
    for env in ({"PREFECT_HOME": str(tmp_path), "PREFECT_API_URL": "https://prefect.example.com/api"},
                {"PREFECT_HOME": str(tmp_path)},
                {"PREFECT_HOME": str(tmp_path / "none"), "PREFECT_API_URL": "http://127.0.0.1:4200/api"}):
        assert not use_saved_auth_string(env) and CLIENT_VAR not in env
    env = {"PREFECT_HOME": str(tmp_path), "PREFECT_API_URL": "http://127.0.0.1:4200/api", CLIENT_VAR: "ops:mine"}
    assert not use_saved_auth_string(env) and env[CLIENT_VAR] == "ops:mine"


def test_masked_shows_the_user_part_only():
    assert masked("muppet:abc") == "muppet:***" and masked("abc") == "***"


def test_the_local_server_gives_its_clients_the_string():
    assert LocalServer(4200, auth_string="ops:s").environment()[CLIENT_VAR] == "ops:s"
    assert CLIENT_VAR not in LocalServer(4200).environment()
