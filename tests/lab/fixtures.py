"""Session fixtures of the lab panel's browser tests: a local model server, one real
``jupyter lab`` (serving this checkout's build of the extension) and one Chromium page."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from jupyter_llm.testing.tiny_gguf import sha256_file, write_tiny_gguf
from tests.fixtures.http_server import LocalHTTPServer
from tests.lab.helpers import REPO, TIMEOUT_MS, open_lab
from tests.lab.server import LAUNCH_ARGS, LabServer, chromium_path, start_lab

__all__ = ["COURSE", "CHROMIUM", "lab", "lab_page", "model_server"]

CHROMIUM = chromium_path()

COURSE = {
    "shell.md": """# The Unix shell

## Listing files

The `ls` command lists the files in the current directory.
Use `ls -l` to see sizes and dates, and `ls -a` to show hidden files.

## Moving around

The `cd` command changes the working directory.
`pwd` prints the working directory.
""",
    "git.md": """# Version control with git

## Recording changes

`git add` stages a change and `git commit` records the staged changes in the history.
Write a short commit message that says why the change was made.
""",
}


def long_lesson() -> str:
    """A 300-line lesson whose one section about frobnication starts at line 201."""
    lines = ["# A long lesson", ""]
    for n in range(1, 199):
        lines.append(f"Paragraph line {n} talks about directories, paths and the prompt.")
    lines += ["## Frobnication of widgets", "",  # lines 201-202
              "To frobnicate a widget, run `frob --widget NAME` in the shell.",
              "Frobnication rewrites the widget in place and keeps a backup copy."]
    while len(lines) < 300:
        lines.append(f"Closing line {len(lines) + 1} repeats the summary of the lesson.")
    return "\n".join(lines) + "\n"


COURSE["long.md"] = long_lesson()


@pytest.fixture(scope="session")
def model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A local HTTP server with a ~5 MB tiny model (big enough for several progress events);
    ``/slow.gguf`` trickles the same bytes slowly, for cancelling."""
    folder = tmp_path_factory.mktemp("model")
    gguf = write_tiny_gguf(folder / "tiny.gguf", n_embd=256, n_layer=4, context_length=32768)
    server = LocalHTTPServer()
    server.serve("/tiny.gguf", file=gguf, chunk_size=64 * 1024, chunk_delay=0.02)
    server.serve("/other.gguf", file=gguf, chunk_size=256 * 1024)
    server.serve("/slow.gguf", file=gguf, chunk_size=64 * 1024, chunk_delay=0.25)
    entry = {"backend": "llama_cpp", "sha256": sha256_file(gguf),
             "size_bytes": gguf.stat().st_size, "tags": ["CONVERSATIONAL"],
             "license": "Apache-2.0"}
    yield {"server": server, "models": [
        {"id": "tiny-chat", "name": "Tiny chat", "url": server.url("/tiny.gguf"),
         "description": "A tiny random model for the course's exercises.", **entry},
        {"id": "tiny-slow", "name": "Tiny slow", "url": server.url("/slow.gguf"), **entry},
        {"id": "tiny-other", "name": "Tiny other", "url": server.url("/other.gguf"), **entry},
    ]}
    server.close()


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory, model_server: dict[str, Any]) -> Iterator[LabServer]:
    """A running ``jupyter lab`` with the panel installed and a course folder to ingest."""
    if CHROMIUM is None:
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium; `make "
                    "install` does it): the lab panel browser tests need it")
    if not (REPO / "jupyter_llm" / "labextension" / "package.json").is_file():
        pytest.fail("The jupyter-llm labextension is not built: run `pip install -e .` "
                    "(or `make install`, or `cd labextension && jlpm build:prod`).")
    base = tmp_path_factory.mktemp("lab")
    course = base / "root" / "course"
    course.mkdir(parents=True)
    for name, text in COURSE.items():
        (course / name).write_text(text)
    server = start_lab(base, model_server["models"])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def lab_page(lab: LabServer) -> Iterator[Any]:
    """One Chromium page on JupyterLab, with the LLM panel open, per test module: Playwright's
    sync API holds an event loop in this thread while it runs, so it must end before the
    pytest-jupyter tests (which run their own loop) that follow the browser tests."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.grant_permissions(["clipboard-read", "clipboard-write"])
        context.set_default_timeout(TIMEOUT_MS)
        pg = context.new_page()
        open_lab(pg, lab)
        yield pg
        context.close()
        browser.close()
