"""Model host throughput: worker process vs in-process llama.cpp, and concurrent streams.

Prints two ratios, each against a baseline measured in the same run:

- ``worker/direct``: streaming tokens/s through a ``ModelHost`` worker process divided by
  ``LlamaCppModel`` in this process (goal: at least 0.95).
- ``aggregate/single``: tokens/s of N concurrent streams on one model (served one at a
  time by its FIFO queue) divided by one stream's; plus whether any stream was cut short.

Run: ``python benchmarks/host_concurrency.py [--n-embd 512 --n-layer 8 --tokens 256]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

from jupyter_llm.backends.llama_cpp import LlamaCppModel
from jupyter_llm.config import Settings
from jupyter_llm.host import ModelHost
from jupyter_llm.models import Request
from jupyter_llm.registry import ModelSpec, Registry
from jupyter_llm.testing.tiny_gguf import write_tiny_gguf

PROMPT = "The shell is a program where"


def _stream_rate(response, tokens: int) -> float:
    start = time.perf_counter()
    count = sum(1 for _ in response)
    elapsed = time.perf_counter() - start
    assert count == tokens, f"expected {tokens} pieces, got {count}"
    return count / elapsed


def _concurrent(host: ModelHost, streams: int, opts: dict, tokens: int) -> tuple[float, int]:
    """Aggregate tokens/s of ``streams`` concurrent readers, and how many were cut short."""
    results: list[tuple[int, str | None]] = [(0, None)] * streams
    responses = [host.generate(f"{PROMPT} {i}", "bench", **opts) for i in range(streams)]

    def read(i: int) -> None:
        count = sum(1 for _ in responses[i])
        results[i] = (count, responses[i].finish_reason)

    threads = [threading.Thread(target=read, args=(i,)) for i in range(streams)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    cut = sum(1 for c, r in results if c != tokens or r != "length")
    return sum(c for c, _ in results) / wall, cut


def _relay_cpu_share(host: ModelHost, opts: dict, tokens: int) -> float:
    """CPU seconds this process spends relaying a stream, over the worker's CPU seconds."""
    import psutil

    me = psutil.Process()
    worker = psutil.Process(host.ps()[0]["pid"])
    parent_cpu = worker_cpu = 0.0
    for _ in range(3):
        p0, w0 = sum(me.cpu_times()[:2]), sum(worker.cpu_times()[:2])
        _stream_rate(host.generate(PROMPT, "bench", **opts), tokens)
        parent_cpu += sum(me.cpu_times()[:2]) - p0
        worker_cpu += sum(worker.cpu_times()[:2]) - w0
    return parent_cpu / worker_cpu


def _cancel_overshoot(host: ModelHost, after: int) -> tuple[int, float]:
    """Tokens the worker made after ``cancel()`` (beyond those already sent), and seconds
    from ``cancel()`` until the next queued request got its first token."""
    response = host.generate(PROMPT, "bench", temperature=0, max_tokens=100_000)
    queued = host.generate(PROMPT, "bench", temperature=0, max_tokens=2)
    seen = threading.Event()

    def read() -> None:
        for i, _ in enumerate(response):
            if i + 1 == after:
                seen.set()

    reader = threading.Thread(target=read)
    reader.start()
    seen.wait()
    sent = response._stream._inner.received  # pieces that had come over the pipe
    cancelled_at = time.perf_counter()
    response.cancel()
    next(iter(queued))
    handover = time.perf_counter() - cancelled_at
    reader.join()
    queued.text()
    return response.usage.completion_tokens - sent, handover


def main() -> None:
    """Run the benchmark and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-embd", type=int, default=512)
    parser.add_argument("--n-layer", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = write_tiny_gguf(Path(tmp) / "bench.gguf", seed=0, n_embd=args.n_embd,
                               n_layer=args.n_layer)
        size_mb = path.stat().st_size / 2**20
        registry = Registry()
        registry.add(ModelSpec(id="bench", backend="llama_cpp", path=str(path)))
        host = ModelHost(Settings(history=False, n_ctx=1024), registry=registry)
        direct = LlamaCppModel.from_path(path, n_ctx=1024)
        opts = {"temperature": 0, "max_tokens": args.tokens}
        try:
            host.load("bench")
            direct.load()
            host.generate(PROMPT, "bench", **opts).text()  # warm both
            direct.run(Request(prompt=PROMPT, options=direct.options(opts))).text()

            worker_rates, direct_rates = [], []
            for _ in range(args.rounds):  # paired and interleaved, so load noise hits both
                direct_rates.append(_stream_rate(
                    direct.run(Request(prompt=PROMPT, options=direct.options(opts))), args.tokens))
                worker_rates.append(_stream_rate(host.generate(PROMPT, "bench", **opts),
                                                 args.tokens))
            direct.close()
            relay = _relay_cpu_share(host, opts, args.tokens)
            ratios = [w / d for w, d in zip(worker_rates, direct_rates, strict=True)]
            print(f"model: n_embd={args.n_embd} n_layer={args.n_layer} ({size_mb:.0f} MB), "
                  f"{args.tokens} tokens per stream, {args.rounds} paired rounds")
            print(f"direct (in-process) : {statistics.median(direct_rates):8.1f} tokens/s (median)")
            print(f"worker (host)       : {statistics.median(worker_rates):8.1f} tokens/s (median)")
            print(f"ratio worker/direct : {statistics.median(ratios):8.3f} (median of "
                  f"{', '.join(f'{r:.3f}' for r in ratios)})")
            print(f"relay CPU share     : {relay:8.3f} (parent CPU per token / worker CPU per "
                  "token; insensitive to machine load)")

            singles, aggregates, interrupted = [], [], 0
            for _ in range(max(1, args.rounds // 2)):
                singles.append(_stream_rate(host.generate(PROMPT, "bench", **opts), args.tokens))
                rate, cut = _concurrent(host, args.streams, opts, args.tokens)
                aggregates.append(rate)
                interrupted += cut
            agg = [a / s for a, s in zip(aggregates, singles, strict=True)]
            print(f"single stream       : {statistics.median(singles):8.1f} tokens/s (median)")
            print(f"{args.streams} concurrent streams: {statistics.median(aggregates):8.1f} "
                  "tokens/s aggregate (median)")
            print(f"ratio aggregate/single: {statistics.median(agg):6.3f} (median of "
                  f"{', '.join(f'{r:.3f}' for r in agg)})")
            print(f"streams interrupted : {interrupted} of {args.streams * len(agg)}")

            trials = [_cancel_overshoot(host, after=16) for _ in range(args.rounds)]
            print(f"cancel overshoot    : {', '.join(str(n) for n, _ in trials)} tokens "
                  f"(one token = {1000 / statistics.median(worker_rates):.1f} ms here)")
            print(f"cancel -> next request's first token: "
                  f"{statistics.median(t for _, t in trials) * 1000:.1f} ms (median)")
        finally:
            host.close()
            direct.close()


if __name__ == "__main__":
    main()
