"""Streaming tokens/s of our ``llama_cpp`` backend divided by ``llama_cpp.Llama`` called directly.

Both stream the same raw completion from the same generated GGUF (n_embd 512, 8 layers by
default) at temperature 0 with the same thread count, in the same process, alternating runs so
that machine noise hits both alike. The goal is a ratio of at least 0.97.

    python benchmarks/llama_backend_throughput.py [--n-embd 512] [--n-layer 8] [--tokens 256] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from jupyter_llm.backends.llama_cpp import LlamaCppModel
from jupyter_llm.testing.tiny_gguf import write_tiny_gguf

PROMPT = "The students opened their notebooks and"


def direct_stream(llama, tokens: int) -> tuple[int, float]:
    """Stream with llama-cpp-python directly; return (tokens, seconds)."""
    start = time.perf_counter()
    n = 0
    for chunk in llama.create_completion(prompt=PROMPT, max_tokens=tokens, temperature=0,
                                         stream=True):
        if chunk["choices"][0]["text"]:
            n += 1
    return n, time.perf_counter() - start


def ours_stream(model: LlamaCppModel, tokens: int) -> tuple[int, float]:
    """Stream through our backend's Response; return (tokens, seconds)."""
    start = time.perf_counter()
    response = model.complete(PROMPT, max_tokens=tokens, temperature=0)
    n = sum(1 for _ in response)
    return n, time.perf_counter() - start


def main() -> None:
    """Run the comparison and print tokens/s of each and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-embd", type=int, default=512)
    parser.add_argument("--n-layer", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="1 is steadiest on a busy machine")
    args = parser.parse_args()

    import llama_cpp

    with tempfile.TemporaryDirectory() as tmp:
        path = write_tiny_gguf(Path(tmp) / "bench.gguf", n_embd=args.n_embd, n_layer=args.n_layer,
                               n_head=8)
        size_mb = path.stat().st_size / 1e6
        ours = LlamaCppModel.from_path(path, n_ctx=1024, n_threads=args.threads)
        ours.load()
        direct = llama_cpp.Llama(model_path=str(path), n_ctx=1024, n_threads=args.threads,
                                 verbose=False, seed=0)
        direct_stream(direct, 16), ours_stream(ours, 16)  # warm up both
        rates: dict[str, list[float]] = {"direct": [], "ours": []}
        ratios = []
        for run in range(args.runs):  # alternate who goes first, pair up neighbouring runs
            order = ("direct", "ours") if run % 2 == 0 else ("ours", "direct")
            got = {}
            for name in order:
                n, s = direct_stream(direct, args.tokens) if name == "direct" else ours_stream(ours, args.tokens)
                got[name] = n / s
                rates[name].append(n / s)
            ratios.append(got["ours"] / got["direct"])
        d, o = statistics.median(rates["direct"]), statistics.median(rates["ours"])
        print(f"model: n_embd={args.n_embd} n_layer={args.n_layer} ({size_mb:.1f} MB), "
              f"{args.tokens} tokens x {args.runs} runs, {args.threads} threads")
        print(f"direct llama_cpp.Llama : {d:9.1f} tokens/s (median)")
        print(f"jupyter_llm llama_cpp  : {o:9.1f} tokens/s (median)")
        print(f"ratio ours/direct      : {o / d:.3f} of medians, {statistics.median(ratios):.3f} "
              f"median of paired runs (min {min(ratios):.3f}, max {max(ratios):.3f}; goal >= 0.97)")
        ours.close()
        direct.close()


if __name__ == "__main__":
    main()
