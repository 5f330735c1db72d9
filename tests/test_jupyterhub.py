"""A real JupyterHub (DummyAuthenticator, SimpleLocalProcessSpawner) with three users and one
shared ``jupyter llm serve`` that knows hub users by their hub tokens (the classroom setup of
docs/deployment.md): names, per-user limits, history visibility and the instructor's export."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .fixtures.server import _free_port, start_serve

pytestmark = pytest.mark.timeout(600)

HUB_CONFIG = """
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.JupyterHub.db_url = "sqlite:///{tmp}/hub.sqlite"
c.JupyterHub.cookie_secret_file = "{tmp}/cookie_secret"
c.JupyterHub.pid_file = "{tmp}/hub.pid"
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = "classroom"
c.Authenticator.allowed_users = {{"alice", "bob", "teacher"}}
c.JupyterHub.load_groups = {{"teachers": {{"users": ["teacher"]}}}}
c.JupyterHub.spawner_class = "simple"
c.Spawner.cmd = [{singleuser!r}]
c.Spawner.args = ["--allow-root", "--ServerApp.jpserver_extensions={{'jupyter_llm': True}}"]
c.Spawner.environment = {{"JUPYTER_LLM_URL": "{llm_url}", "JUPYTER_LLM_HOME": "{tmp}/user-home"}}
c.Spawner.http_timeout = 120
c.Spawner.start_timeout = 120
c.JupyterHub.services = [{{"name": "classroom-test", "api_token": "{service_token}"}}]
c.JupyterHub.load_roles = [{{"name": "classroom-test", "services": ["classroom-test"],
                            "scopes": ["admin:users", "admin:servers", "tokens", "list:users"]}}]
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
"""

POLICY = """\
default_role: student
roles:
  student:
    limits: {requests: 2, window: 1h}
groups:
  teachers: instructor
"""


def _wait(url: str, process: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer:\n{log.read_text()[-3000:]}")


@pytest.fixture
def hub(tmp_path, tiny_registry):
    """A running hub, the shared host it points users at, and an admin API client."""
    chp = shutil.which("configurable-http-proxy")
    singleuser = shutil.which("jupyterhub-singleuser", path=os.path.dirname(sys.executable))
    if not chp or not singleuser:
        pytest.fail("the JupyterHub test needs `jupyterhub` (pip, in the test extra) and "
                    "`configurable-http-proxy` (npm install -g); `make install` installs both")
    port, hub_port = _free_port(), _free_port()
    hub_api = f"http://127.0.0.1:{hub_port}/hub/api"
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    served = start_serve(tmp_path, "--port", str(_free_port()), "--ip", "127.0.0.1",
                         env={"JUPYTER_LLM_POLICY_FILE": str(policy),
                              "JUPYTERHUB_API_URL": hub_api})
    service_token = "classroom-test-" + os.urandom(8).hex()
    config = tmp_path / "jupyterhub_config.py"
    config.write_text(HUB_CONFIG.format(
        port=port, hub_port=hub_port, tmp=tmp_path, singleuser=singleuser, llm_url=served.url,
        service_token=service_token, chp=chp, proxy_api_port=_free_port()))
    log = tmp_path / "hub.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(config)],
                                   cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait(f"{hub_api}/", process, log)
        admin = httpx.Client(base_url=hub_api + "/", timeout=120,
                             headers={"Authorization": f"token {service_token}"})
        yield {"url": f"http://127.0.0.1:{port}", "admin": admin, "served": served, "log": log}
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        subprocess.run(["pkill", "-f", f"{tmp_path}/user-home"], check=False)
        served.stop()


def _user_token(hub, name: str) -> str:
    admin = hub["admin"]
    admin.post(f"users/{name}")  # 409 when the user exists already is fine
    r = admin.post(f"users/{name}/tokens", json={"note": "classroom test"})
    assert r.status_code == 201, r.text
    return r.json()["token"]


def _chat(served, token: str, text: str) -> httpx.Response:
    return httpx.post(served.url + "llm/api/chat", timeout=60,
                      headers={"Authorization": f"token {token}"},
                      json={"model": "tiny-chat", "messages": [{"role": "user", "content": text}],
                            "stream": False, "options": {"max_tokens": 4, "temperature": 0}})


def test_hub_users_share_one_host_with_their_own_names_limits_and_history(hub):
    served = hub["served"]
    alice, bob, teacher = (_user_token(hub, n) for n in ("alice", "bob", "teacher"))

    assert _chat(served, alice, "what is a loop?").status_code == 200
    assert _chat(served, alice, "and a list?").status_code == 200
    refused = _chat(served, alice, "one more")
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    assert "2 requests per hour" in refused.json()["error"]["message"]
    assert _chat(served, bob, "bob asks").status_code == 200  # alice's limit is hers

    def get(token: str, path: str, **params: str) -> httpx.Response:
        return httpx.get(served.url + path, params=params, timeout=30,
                         headers={"Authorization": f"token {token}"})

    me = get(teacher, "llm/api/me").json()
    assert me["name"] == "teacher" and me["role"] == "instructor"  # from the hub group
    own = get(alice, "llm/api/history").json()["entries"]
    assert {e["user"] for e in own} == {"alice"} and len(own) == 3
    assert get(bob, "llm/api/history", user="alice").status_code == 403
    exported = get(teacher, "llm/api/history/export", format="jsonl")
    assert exported.status_code == 200
    users = [json.loads(line)["user"] for line in exported.text.splitlines()]
    assert sorted(set(users)) == ["alice", "bob"] and users.count("alice") == 3
    assert get(alice, "llm/api/history/export").status_code == 403
    assert get("not-a-hub-token", "llm/api/me").status_code in (401, 403)


def test_a_single_user_server_knows_its_hub_user_and_points_kernels_at_the_shared_host(hub):
    admin, served = hub["admin"], hub["served"]
    alice = _user_token(hub, "alice")
    r = admin.post("users/alice/server")
    assert r.status_code in (201, 202), r.text
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        model = admin.get("users/alice").json()
        if model["servers"].get("", {}).get("ready"):
            break
        time.sleep(0.5)
    else:
        pytest.fail("alice's server did not start:\n" + hub["log"].read_text()[-4000:])
    headers = {"Authorization": f"token {alice}"}
    me = httpx.get(f"{hub['url']}/user/alice/llm/api/me", headers=headers, timeout=60)
    assert me.status_code == 200, me.text
    assert me.json()["name"] == "alice"
    # the extension leaves JUPYTER_LLM_URL (the shared host) for the kernels it starts
    config = httpx.get(f"{hub['url']}/user/alice/llm/api/config", headers=headers, timeout=60)
    assert config.status_code == 200
    assert served.url.rstrip("/") in json.dumps(config.json())
