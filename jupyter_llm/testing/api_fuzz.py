"""Fuzz every documented route (native, ``/v1``, Pantry) of a real ``jupyter llm serve`` with
Schemathesis, against ``llm/api/openapi.json``: no 5xx, and every answer as documented.

    python -m jupyter_llm.testing.api_fuzz --max-examples 40 --seed 11

A temporary data directory holds two tiny generated models (chat and embedding) and a
registry; the server runs with its own token. Prints one JSON line with the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["run_fuzz", "CHECKS"]

CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "response_headers_conformance")

_DEFAULT_MAX_TIME = 600


def _prepare_home(home: Path) -> dict[str, str]:
    """Two tiny installed models and a registry naming them; the server's environment."""
    from ..registry import ModelSpec
    from ..store import Store
    from .tiny_gguf import sha256_file, write_tiny_gguf

    files = home / "files"
    files.mkdir(parents=True)
    chat = write_tiny_gguf(files / "tiny-chat.gguf", seed=0, n_embd=64)
    embed = write_tiny_gguf(files / "tiny-embed.gguf", seed=1, n_embd=64, name="tiny-embed")
    entries = [
        {"id": "tiny-chat", "backend": "llama_cpp", "tags": ["CONVERSATIONAL"],
         "aliases": ["tiny"], "url": "http://127.0.0.1:9/tiny-chat.gguf",
         "sha256": sha256_file(chat), "size_bytes": chat.stat().st_size, "context_length": 2048},
        {"id": "tiny-embed", "backend": "llama_cpp", "tags": ["EMBEDDING"],
         "url": "http://127.0.0.1:9/tiny-embed.gguf", "sha256": sha256_file(embed),
         "size_bytes": embed.stat().st_size, "context_length": 2048, "embedding_dimensions": 64},
    ]
    registry = home / "registry.json"
    registry.write_text(json.dumps({"models": entries}))
    env = {**os.environ, "JUPYTER_LLM_HOME": str(home / "data"),
           "JUPYTER_LLM_REGISTRY_PATH": str(registry), "JUPYTER_LLM_DEFAULT_MODEL": "tiny-chat",
           "JUPYTER_LLM_DEFAULT_EMBEDDING_MODEL": "tiny-embed", "JUPYTER_LLM_N_CTX": "256",
           "JUPYTER_LLM_ALLOW_DOWNLOADS": "0", "GGML_NO_BACKTRACE": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("JUPYTER_LLM_URL", None)
    os.environ["JUPYTER_LLM_HOME"] = env["JUPYTER_LLM_HOME"]
    try:
        store = Store(Path(env["JUPYTER_LLM_HOME"]) / "models")
        for entry, src in zip(entries, (chat, embed), strict=True):
            store.install_file(ModelSpec.model_validate(entry), src)
    finally:
        os.environ.pop("JUPYTER_LLM_HOME", None)
    (home / "root").mkdir()
    (home / "root" / "notes.md").write_text("# Notes\n\nThe shell lists files with ls.\n")
    return env


def _serve(home: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str, str, Path]:
    log = home / "serve.log"
    out = open(log, "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen([sys.executable, "-m", "jupyter_llm.cli", "serve", "--port", "0",
                                "--port-retries", "0"], stdout=out, stderr=subprocess.STDOUT,
                               env=env, cwd=str(home / "root"))
    pattern = re.compile(r"jupyter-llm serving at (\S+) with token (\S*)")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        match = pattern.search(log.read_text(errors="replace"))
        if match:
            return process, match.group(1), match.group(2), log
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("jupyter llm serve did not start:\n" + log.read_text(errors="replace"))


def run_fuzz(*, max_examples: int = 20, seed: int = 11, workers: int = 1,
             max_time: int | None = None, phases: str = "examples,coverage,fuzzing",
             report_dir: Path | None = None) -> dict[str, Any]:
    """Serve tiny models, run Schemathesis over the served document, and return the numbers:
    operations, test cases, 5xx answers, failures by check, and the exit status."""
    with tempfile.TemporaryDirectory(prefix="jupyter-llm-fuzz-") as tmp:
        home = Path(tmp)
        env = _prepare_home(home)
        process, url, token, log = _serve(home, env)
        reports = Path(report_dir).resolve() if report_dir else home / "report"
        try:
            cmd = [sys.executable, "-m", "schemathesis.cli", "run",
                   f"{url}llm/api/openapi.json", "--url", url.rstrip("/"),
                   "-H", f"Authorization: token {token}", "--checks", ",".join(CHECKS),
                   "--max-examples", str(max_examples), "--seed", str(seed),
                   "--workers", str(workers), "--phases", phases,
                   "--no-shrink", "--generation-database", "none", "--no-color",
                   "--request-timeout", "60", "--suppress-health-check", "all",
                   "--max-time", str(max_time or _DEFAULT_MAX_TIME),
                   "--report", "ndjson", "--report-dir", str(reports)]
            started = time.monotonic()
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600,
                                  cwd=str(home))  # its .schemathesis cache stays out of the repo
            elapsed = time.monotonic() - started
        finally:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        server_log = log.read_text(errors="replace")
        numbers = _count(reports, done.stdout)
        numbers.update({"exit_code": done.returncode, "seconds": round(elapsed, 1),
                        "max_examples": max_examples, "seed": seed,
                        "phases": phases,
                        "server_tracebacks": server_log.count("Traceback (most recent call last)"),
                        "output": done.stdout[-6000:] + done.stderr[-2000:]})
        return numbers


def _count(reports: Path, stdout: str) -> dict[str, Any]:
    """Test cases, answers by status and failed checks, from the NDJSON event report."""
    statuses: dict[str, int] = {}
    failures: dict[str, int] = {}
    examples: list[str] = []
    operations: set[str] = set()
    cases = 0
    for file in reports.glob("*.ndjson"):
        with open(file, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if not line.startswith('{"ScenarioFinished"'):
                    continue
                recorder = json.loads(line)["ScenarioFinished"].get("recorder") or {}
                operations.add(recorder.get("label", "?"))
                for interaction in (recorder.get("interactions") or {}).values():
                    response = interaction.get("response") or {}
                    if isinstance(response.get("status_code"), int):
                        cases += 1
                        key = str(response["status_code"])
                        statuses[key] = statuses.get(key, 0) + 1
                for checks in (recorder.get("checks") or {}).values():
                    for check in checks:
                        if check.get("status") == "failure":
                            failures[check["name"]] = failures.get(check["name"], 0) + 1
                            info = (check.get("failure_info") or {}).get("failure") or {}
                            if len(examples) < 10:
                                examples.append(f"{recorder.get('label')}: {info.get('title')}"
                                                f" — {str(info.get('message'))[:300]}")
    return {"operations": len(operations), "test_cases": cases, "statuses": statuses,
            "server_errors": sum(n for code, n in statuses.items() if code.startswith("5")),
            "failures": failures, "failure_examples": examples}


def main(argv: list[str] | None = None) -> int:
    """Run the fuzzer and print its numbers as one JSON line (exit 1 on any failure)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=20)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--max-time", type=int, default=None)
    parser.add_argument("--phases", default="examples,coverage,fuzzing")
    parser.add_argument("--verbose", action="store_true", help="print Schemathesis' output")
    args = parser.parse_args(argv)
    numbers = run_fuzz(max_examples=args.max_examples, seed=args.seed, workers=args.workers,
                       max_time=args.max_time, phases=args.phases)
    output = numbers.pop("output")
    if args.verbose or numbers["exit_code"]:
        print(output, file=sys.stderr)
    print(json.dumps(numbers))
    return 0 if numbers["exit_code"] == 0 and not numbers["server_errors"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
