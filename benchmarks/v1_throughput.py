"""Streaming through the server's OpenAI-compatible ``/v1`` vs llama-cpp-python in-process.

Both stream the same raw completion from the same generated GGUF (n_embd 512, 8 layers by
default) at temperature 0 with the same thread count. The server is ``jupyter llm serve`` in
a subprocess (its model runs in a worker process); the client is the real ``openai`` client.
Runs alternate so machine noise hits both alike. Prints, measured in this run:

- ``throughput ratio``: tokens/s through ``/v1`` (first to last token) / direct (goal ≥ 0.95)
- ``ttft overhead``: time to first token through ``/v1`` minus direct (HTTP + queue + pipe)

    python benchmarks/v1_throughput.py [--n-embd 512] [--n-layer 8] [--tokens 256] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

PROMPT = "The students opened their notebooks and"


def direct(llama, tokens: int) -> tuple[float, float]:
    """(time to first token, tokens/s after it) streaming with llama-cpp-python."""
    start = time.perf_counter()
    first = None
    n = 0
    for chunk in llama.create_completion(PROMPT, max_tokens=tokens, temperature=0.0,
                                         stream=True):
        if chunk["choices"][0]["text"]:
            n += 1
            if first is None:
                first = time.perf_counter()
    end = time.perf_counter()
    return first - start, (n - 1) / (end - first)


def through_v1(client, tokens: int) -> tuple[float, float]:
    """(time to first token, tokens/s after it) streaming through the server's /v1."""
    start = time.perf_counter()
    first = None
    n = 0
    for chunk in client.completions.create(model="bench", prompt=PROMPT, max_tokens=tokens,
                                           temperature=0.0, stream=True):
        if chunk.choices and chunk.choices[0].text:
            n += 1
            if first is None:
                first = time.perf_counter()
    end = time.perf_counter()
    return first - start, (n - 1) / (end - first)


def main() -> None:
    """Run the benchmark and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-embd", type=int, default=512)
    parser.add_argument("--n-layer", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import llama_cpp
    import openai
    from _setup import install_bench_model

    from tests.fixtures.server import start_serve

    work, gguf, registry = install_bench_model("v1-bench-", n_embd=args.n_embd,
                                               n_layer=args.n_layer, context_length=2048)
    print(f"model: n_embd={args.n_embd} n_layer={args.n_layer} "
          f"({gguf.stat().st_size / 1e6:.1f} MB), {args.tokens} tokens, {args.threads} threads")

    served = start_serve(work, "--port", "0", env={
        "JUPYTER_LLM_REGISTRY_PATH": str(registry),
        "JUPYTER_LLM_N_THREADS": str(args.threads), "JUPYTER_LLM_N_CTX": "2048"})
    try:
        client = openai.OpenAI(base_url=served.url + "llm/v1", api_key=served.token,
                               max_retries=0)
        llama = llama_cpp.Llama(str(gguf), n_ctx=2048, n_threads=args.threads, verbose=False)
        through_v1(client, 8), direct(llama, 8)  # warm up: load the worker, caches
        d_ttft, d_tps, v_ttft, v_tps = [], [], [], []
        for _ in range(args.runs):
            t, r = direct(llama, args.tokens)
            d_ttft.append(t)
            d_tps.append(r)
            t, r = through_v1(client, args.tokens)
            v_ttft.append(t)
            v_tps.append(r)
        d, v = statistics.median(d_tps), statistics.median(v_tps)
        print(f"direct llama-cpp-python: {d:8.1f} tokens/s, ttft {statistics.median(d_ttft) * 1e3:6.1f} ms")
        print(f"through /v1 (openai):    {v:8.1f} tokens/s, ttft {statistics.median(v_ttft) * 1e3:6.1f} ms")
        print(f"throughput ratio /v1 / direct: {v / d:.3f}  (goal >= 0.95)")
        print(f"ttft overhead: {(statistics.median(v_ttft) - statistics.median(d_ttft)) * 1e3:.1f} ms")
    finally:
        served.stop()


if __name__ == "__main__":
    main()
