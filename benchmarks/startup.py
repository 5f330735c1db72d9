"""Start-up cost of jupyter-llm: importing the package, the server extension and the magics,
and starting a Jupyter server with the extension versus without it (goal: < 0.3 s each).

The extension's import is timed inside a process that already imported jupyter_server (as a
server has); ``%load_ext`` inside an IPython shell. Every figure is a median over fresh processes, with the baseline (an empty interpreter, or
the same server without the extension) measured in the same run.

    python benchmarks/startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

SNIPPETS = {
    "python (baseline)": "pass",
    "import jupyter_llm": "import jupyter_llm",
    "import the server extension": ("import jupyter_server.serverapp, time; t = time.perf_counter(); "
                                    "import jupyter_llm.server.app; print(time.perf_counter() - t)"),
    "%load_ext jupyter_llm": ("from IPython.core.interactiveshell import InteractiveShell; "
                              "s = InteractiveShell.instance(); import time; t = time.perf_counter(); "
                              "s.run_line_magic('load_ext', 'jupyter_llm'); "
                              "print(time.perf_counter() - t)"),
}


def time_snippet(code: str) -> float:
    """Seconds to run ``code`` in a fresh interpreter (or what it prints, if it prints a time)."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - start
    return float(out.stdout.strip()) if out.stdout.strip() else elapsed


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def time_server(with_extension: bool) -> float:
    """Seconds from launching ``jupyter server`` until its API answers."""
    port = free_port()
    token = "bench"
    env = {**os.environ, "JUPYTER_LLM_HOME": tempfile.mkdtemp()}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", f"--port={port}", "--ip=127.0.0.1",
         f"--IdentityProvider.token={token}", "--ServerApp.open_browser=False", "--allow-root",
         f"--ServerApp.jpserver_extensions=jupyter_llm={with_extension}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}/api/status?token={token}"
    try:
        while True:
            try:
                urllib.request.urlopen(url, timeout=1).read()
                return time.perf_counter() - start
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError("jupyter server exited") from None
                time.sleep(0.01)
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    """Print the median of each measurement and its cost over the baseline."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    medians = {name: statistics.median(time_snippet(code) for _ in range(args.runs))
               for name, code in SNIPPETS.items()}
    base = medians["python (baseline)"]
    for name, value in medians.items():
        extra = f"  (+{value - base:.3f} s over python)" if name == "import jupyter_llm" else ""
        print(f"{name:32s} {value:7.3f} s{extra}")
    without = [time_server(False) for _ in range(args.runs)]
    with_ext = [time_server(True) for _ in range(args.runs)]
    w, wo = statistics.median(with_ext), statistics.median(without)
    print(f"{'jupyter server without':32s} {wo:7.3f} s")
    print(f"{'jupyter server with jupyter_llm':32s} {w:7.3f} s  (+{w - wo:.3f} s, ratio {w / wo:.2f})")


if __name__ == "__main__":
    main()
