"""Download throughput of ``DownloadManager`` (resume support, sha256, fsync, atomic install)
divided by a plain ``httpx`` stream to a file, from a local HTTP server in another process.

    python benchmarks/download_throughput.py [--mib 256] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from jupyter_llm.downloads import DownloadManager
from jupyter_llm.registry import ModelSpec
from jupyter_llm.store import Store, sha256_file


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def plain(url: str, dest: Path) -> float:
    """Seconds for httpx to stream ``url`` into ``dest``."""
    start = time.perf_counter()
    with httpx.stream("GET", url) as r, open(dest, "wb") as f:
        for chunk in r.iter_bytes(1 << 20):
            f.write(chunk)
    return time.perf_counter() - start


def ours(spec: ModelSpec, root: Path) -> float:
    """Seconds for a fresh DownloadManager to download, verify and install ``spec``."""
    store = Store(root / "models", root / "downloads")
    start = time.perf_counter()
    DownloadManager(store).download(spec)
    elapsed = time.perf_counter() - start
    store.remove(spec)
    return elapsed


def main() -> None:
    """Serve a random file and compare both ways of downloading it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "www").mkdir()
        src = root / "www" / "model.gguf"
        with open(src, "wb") as f:
            for _ in range(args.mib):
                f.write(os.urandom(1 << 20))
        digest = sha256_file(src)
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind",
                                   "127.0.0.1", "--directory", str(root / "www")],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}/model.gguf"
            for _ in range(100):
                try:
                    httpx.head(url)
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            spec = ModelSpec(id="bench", backend="llama_cpp", url=url, sha256=digest,
                             size_bytes=src.stat().st_size)
            base = min(plain(url, root / "plain.bin") for _ in range(args.runs))
            mine = min(ours(spec, root / "store") for _ in range(args.runs))
        finally:
            server.terminate()
            server.wait()
    size = args.mib * (1 << 20)
    print(f"{args.mib} MiB over loopback, best of {args.runs}")
    print(f"plain httpx to file  : {base:6.2f} s  {size / base / 1e6:7.1f} MB/s")
    print(f"DownloadManager      : {mine:6.2f} s  {size / mine / 1e6:7.1f} MB/s "
          "(resume bookkeeping + sha256 + fsync + atomic install)")
    print(f"throughput ratio ours/plain: {base / mine:.2f}")


if __name__ == "__main__":
    main()
