"""A real ``jupyter lab`` in a subprocess for the browser tests of the side panel.

It runs with a fresh ``JUPYTER_LLM_HOME``, a local registry (``JUPYTER_LLM_REGISTRY_PATH``)
whose ``tiny-chat`` entry is served by a local HTTP server, its own Jupyter config, settings
and workspaces folders, a token, and ``expose_app_in_browser`` so tests can run commands.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["LabServer", "chromium_path", "labextension_build", "labextension_installed", "start_lab",
           "LAUNCH_ARGS"]

LAUNCH_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
]
"""Chromium flags that work on these machines (docs: NOTES.md)."""


def chromium_path() -> str | None:
    """Debian's Chromium binary (the real one, not the wrapper script), or None."""
    for candidate in ("/usr/lib/chromium/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def labextension_build() -> Path | None:
    """This checkout's build of the extension (``jupyter_llm/labextension``), or None."""
    build = Path(__file__).resolve().parents[2] / "jupyter_llm" / "labextension"
    return build if (build / "package.json").is_file() else None


def labextension_installed() -> Path | None:
    """The folder of the installed ``jupyter-llm`` labextension, or None."""
    from jupyter_core.paths import jupyter_path

    for base in jupyter_path("labextensions"):
        candidate = Path(base) / "jupyter-llm" / "package.json"
        if candidate.is_file():
            return candidate.parent
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LabServer:
    """A running ``jupyter lab``: where it listens, its token, its folders and its log."""

    proc: subprocess.Popen[bytes]
    url: str
    token: str
    root: Path
    home: Path
    log: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def lab_url(self) -> str:
        """The URL that opens JupyterLab with an empty layout, logged in with the token."""
        return f"{self.url}lab?reset&token={self.token}"

    def api(self, method: str, route: str, body: Any = None, timeout: float = 60) -> Any:
        """Call a server route (relative to base_url) with the token; answers parsed JSON.

        An HTTP error answers ``{"status": code, **envelope}`` instead of raising.
        """
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + route, data=data, method=method,
            headers={"Authorization": f"token {self.token}",
                     "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as e:
            text = e.read().decode()
            try:
                return {"status": e.code, **json.loads(text)}
            except ValueError:
                return {"status": e.code, "text": text}
        if not text.strip():
            return {}
        try:
            return json.loads(text)
        except ValueError:  # NDJSON: the lines
            return [json.loads(line) for line in text.splitlines() if line.strip()]

    @property
    def policy_file(self) -> Path:
        """The classroom policy file the server re-reads when it changes (``{}``: no policy)."""
        return self.home / "policy.json"

    def log_tail(self, n: int = 4000) -> str:
        """The end of the server's log, for failure messages."""
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_lab(base: Path, registry_models: list[dict[str, Any]], *,
              base_url: str = "/jl/", timeout: float = 90) -> LabServer:
    """Start ``jupyter lab`` serving ``base/root`` with a registry of ``registry_models``."""
    root, home, registry, cfg = (base / "root", base / "home", base / "registry", base / "cfg")
    for folder in (root, home, registry, cfg / "settings", cfg / "workspaces", cfg / "runtime"):
        folder.mkdir(parents=True, exist_ok=True)
    (registry / "tiny.json").write_text(json.dumps({"models": registry_models}))
    # A classroom policy file the tests may rewrite (it is re-read within a second); empty,
    # everyone is admin, as without a policy.
    policy = home / "policy.json"
    if not policy.exists():
        policy.write_text("{}")
    # Serve this checkout's build of the extension: the environment's installed copy may be
    # another checkout's (an editable install elsewhere). JUPYTER_PATH comes first in
    # JupyterLab's search for labextensions, so this one wins.
    jupyter_path = base / "jupyter-path"
    build = labextension_build()
    if build is not None:
        (jupyter_path / "labextensions").mkdir(parents=True, exist_ok=True)
        link = jupyter_path / "labextensions" / "jupyter-llm"
        if not link.exists():
            link.symlink_to(build, target_is_directory=True)
    # No "get notified about Jupyter news?" toast over the screenshots.
    (cfg / "labconfig").mkdir(exist_ok=True)
    (cfg / "labconfig" / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    token = "lab-panel-test-token"
    port = _free_port()
    env = dict(os.environ)
    env.update({
        "JUPYTER_LLM_HOME": str(home),
        "JUPYTER_LLM_REGISTRY_PATH": str(registry),
        "JUPYTER_CONFIG_DIR": str(cfg),
        "JUPYTER_RUNTIME_DIR": str(cfg / "runtime"),
        "GGML_NO_BACKTRACE": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "JUPYTER_LLM_N_THREADS": "1",
        "JUPYTER_LLM_POLICY_FILE": str(policy),
    })
    if build is not None:
        env["JUPYTER_PATH"] = os.pathsep.join(
            [str(jupyter_path)] + [p for p in env.get("JUPYTER_PATH", "").split(os.pathsep) if p])
    env.pop("JUPYTER_LLM_URL", None)
    env.pop("JUPYTER_LLM_TOKEN", None)
    cmd = [
        sys.executable, "-m", "jupyterlab",
        f"--port={port}", "--ip=127.0.0.1",
        f"--IdentityProvider.token={token}", "--ServerApp.open_browser=False",
        f"--ServerApp.base_url={base_url}", f"--ServerApp.root_dir={root}",
        f"--LabApp.user_settings_dir={cfg / 'settings'}",
        f"--LabApp.workspaces_dir={cfg / 'workspaces'}",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if hasattr(os, "getuid") and os.getuid() == 0:
        cmd.append("--allow-root")
    log = base / "jupyter-lab.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    lab = LabServer(proc, f"http://127.0.0.1:{port}{base_url}", token, root, home, log, env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {proc.returncode}:\n{lab.log_tail()}")
        try:
            if "started" in lab.api("GET", "api/status", timeout=2):
                return lab
        except OSError:
            pass
        time.sleep(0.3)
    lab.stop()
    raise RuntimeError(f"jupyter lab did not answer within {timeout} s:\n{lab.log_tail()}")
