"""Continuous batching through the server vs raw llama.cpp batched decoding, same model, same run.

For each model (the real SmolLM2-135M-Instruct and a generated Q8_0 model of about 500 MB)
it starts ``jupyter llm serve`` (``parallel`` = the most streams measured) and prints,
for several rounds (median and spread):

Requests are chat completions at temperature 0 asking for long answers (the raw prompt of
an instruct model often ends at once). The raw loop ignores EOS.

- ``raw xN``: aggregate tokens/s of N sequences decoded together with llama-cpp-python's
  low-level API (one ``llama_batch``, one ``seq_id`` per sequence, greedy), ÷ one sequence:
  the ceiling of any batching worker on this machine;
- ``server xN``: aggregate tokens/s of N concurrent streams through ``/v1`` with the
  ``openai`` client while all N generate, ÷ one stream's; and server ÷ raw (goal >= 0.9);
- ``end to end xN``: the same from the moment the N requests are sent to the last piece
  (prompt reading and staggered starts included), ÷ one stream's end to end;
- ``single``: one stream's tokens/s through ``/v1`` ÷ direct ``llama_cpp.Llama`` (goal >= 0.97);
- ``prefix``: time to first token of a second grounded question with the same instructions
  and passages ÷ the first (each round uses fresh instructions).

    python benchmarks/batching.py [--models smollm2,generated] [--streams 4,8,16]
                                  [--tokens 96] [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from pathlib import Path

PROMPTS = ["Write a long story about a student who learns the shell.",
           "Explain step by step how git stores the history of a project.",
           "Describe a day in the life of a Python programmer, in detail.",
           "Tell me everything you know about the history of computers.",
           "Write a poem about notebooks, kernels and cells.",
           "Explain loops in Python to a beginner with many examples.",
           "Describe how a compiler works, from parsing to code generation.",
           "Tell a story about a robot that learns to paint."]

PASSAGES = Path(__file__).resolve().parent.parent.parent / "shared" / "eval" / "course"


# -- raw llama.cpp --------------------------------------------------------------------------
_CHAT_TOKENS: dict[tuple[str, str], list[int]] = {}


def chat_tokens(gguf: Path, prompt: str) -> list[int]:
    """The tokens the server decodes for a one-message chat (the model's chat template)."""
    key = (str(gguf), prompt)
    if key not in _CHAT_TOKENS:
        from jupyter_llm.backends.llama_cpp import LlamaCppModel
        from jupyter_llm.models import Message, Request

        model = LlamaCppModel("bench", path=gguf, n_ctx=1024)
        tokens, _, _ = model.prepare_chat(Request(messages=[Message(role="user", content=prompt)],
                                                  options=model.options({})))
        model.close()
        _CHAT_TOKENS[key] = tokens
    return _CHAT_TOKENS[key]


def raw_batched(gguf: Path, n_seq: int, tokens: int, threads: int, n_ctx: int) -> float:
    """Aggregate tokens/s of ``n_seq`` greedy sequences decoded in one batch (their chat
    prompts, as the server formats them, read first and not timed)."""
    import llama_cpp
    from llama_cpp import _internals as internals

    llama = llama_cpp.Llama(str(gguf), n_ctx=256, n_threads=threads, verbose=False)
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = n_ctx * n_seq
    params.n_batch = params.n_ubatch = 512
    params.n_seq_max = n_seq
    params.kv_unified = False
    params.n_threads = params.n_threads_batch = threads
    ctx = internals.LlamaContext(model=llama._model, params=params, verbose=False)
    batch = internals.LlamaBatch(n_tokens=512, embd=0, n_seq_max=1, verbose=False)
    b = batch.batch
    samplers = []
    last = []
    pos = []
    for s in range(n_seq):
        prompt = chat_tokens(gguf, PROMPTS[s % len(PROMPTS)])
        for i, t in enumerate(prompt):
            b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = t, i, 1, i == len(prompt) - 1
            b.seq_id[i][0] = s
        b.n_tokens = len(prompt)
        llama_cpp.llama_decode(ctx.ctx, b)
        sampler = internals.LlamaSampler()
        sampler.add_greedy()
        samplers.append(sampler)
        last.append(sampler.sample(ctx, len(prompt) - 1))
        pos.append(len(prompt))
    start = time.perf_counter()
    for _ in range(tokens):
        for s in range(n_seq):
            b.token[s], b.pos[s], b.n_seq_id[s], b.logits[s] = last[s], pos[s], 1, True
            b.seq_id[s][0] = s
            pos[s] += 1
        b.n_tokens = n_seq
        if llama_cpp.llama_decode(ctx.ctx, b) != 0:
            raise RuntimeError("llama_decode failed")
        for s in range(n_seq):
            last[s] = samplers[s].sample(ctx, s)
    elapsed = time.perf_counter() - start
    for sampler in samplers:
        sampler.close()
    batch.close()
    ctx.close()
    llama.close()
    return n_seq * tokens / elapsed


def direct_single(gguf: Path, tokens: int, threads: int, n_ctx: int) -> float:
    """Tokens/s (after the first) of one chat stream with ``llama_cpp.Llama``."""
    import llama_cpp

    llama = llama_cpp.Llama(str(gguf), n_ctx=n_ctx, n_threads=threads, verbose=False)
    first, n = None, 0
    for chunk in llama.create_chat_completion([{"role": "user", "content": PROMPTS[0]}],
                                              max_tokens=tokens, temperature=0.0, stream=True):
        if chunk["choices"][0]["delta"].get("content"):
            n += 1
            first = first or time.perf_counter()
    end = time.perf_counter()
    llama.close()
    return (n - 1) / (end - first)


# -- through the server ---------------------------------------------------------------------
def stream(client, model: str, prompt: str, tokens: int, marks: list) -> None:
    """Stream one chat completion; append the arrival time of each streamed piece."""
    times = []
    for chunk in client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}], max_tokens=tokens,
            temperature=0.0, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            times.append(time.perf_counter())
    marks.append(times)


def served_aggregate(client, model: str, n: int, tokens: int) -> tuple[float, float]:
    """Tokens/s of ``n`` concurrent streams: (decoding, end to end).

    Decoding, like the raw loop (prompts read, then every sequence generating): the pieces
    that arrived while all ``n`` streams were generating (from the last stream's first piece
    to the first stream's last), per second; for one stream, from its first piece to its
    last. End to end: all pieces from the moment the requests were sent to the last piece
    (prompt reading and staggered starts included)."""
    marks: list = []
    threads = [threading.Thread(target=stream, args=(client, model, PROMPTS[i % len(PROMPTS)],
                                                     tokens, marks)) for i in range(n)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = sum(len(m) for m in marks)
    end = max(m[-1] for m in marks)
    begin, stop = max(m[0] for m in marks), min(m[-1] for m in marks)
    inside = sum(1 for m in marks for t in m if begin < t <= stop)
    decoding = inside / (stop - begin) if stop > begin else 0.0
    return decoding, total / (end - start)


def grounded_messages(nonce: int, question: str, chars: int = 1000) -> list[dict]:
    """A grounded question: long instructions and passages (``chars`` of each of two course
    files, shared), then the question."""
    passages = ""
    for path in sorted(PASSAGES.rglob("*.md"))[:2]:
        passages += path.read_text(errors="replace")[:chars] + "\n\n"
    if not passages:
        passages = "The shell is a program that runs other programs. " * 60
    system = (f"[session {nonce}] You are a teaching assistant. Answer only from the passages "
              "below, cite them as [1], [2], and say you do not know when they do not say.\n\n"
              + passages)
    return [{"role": "system", "content": system}, {"role": "user", "content": question}]


def ttft(client, model: str, messages: list[dict]) -> float:
    """Seconds to the first streamed token of a chat completion (read to its end, so its
    slot is free and cached for the next request)."""
    start = time.perf_counter()
    first = None
    for chunk in client.chat.completions.create(model=model, messages=messages, max_tokens=8,
                                                temperature=0.0, stream=True):
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - start
    return first if first is not None else time.perf_counter() - start


def spread(values: list[float]) -> str:
    """Median with min and max."""
    return f"{statistics.median(values):.3f} [{min(values):.3f}-{max(values):.3f}]"


def bench_model(name: str, gguf: Path, registry: Path, work: Path, args) -> dict:
    """All measurements of one model; prints them and returns them."""
    import openai

    from tests.fixtures.server import start_serve

    streams = [int(s) for s in args.streams.split(",")]
    n_ctx = 1024
    served = start_serve(work, "--port", "0", env={
        "JUPYTER_LLM_REGISTRY_PATH": str(registry), "JUPYTER_LLM_N_THREADS": str(args.threads),
        "JUPYTER_LLM_N_CTX": str(n_ctx), "JUPYTER_LLM_PARALLEL": str(max(streams)),
        "JUPYTER_LLM_QUEUE_SIZE": "64", "JUPYTER_LLM_HISTORY": "false"}, timeout=120)
    results: dict = {"model": name, "size_mb": round(gguf.stat().st_size / 1e6),
                     "raw": {}, "server": {}, "end_to_end": {}, "single": [], "prefix": []}
    try:
        client = openai.OpenAI(base_url=served.url + "llm/v1", api_key=served.token,
                               max_retries=0, timeout=600)
        served_aggregate(client, "bench", 1, 4)  # load the worker
        for r in range(args.rounds):
            raw1 = raw_batched(gguf, 1, args.tokens, args.threads, n_ctx)
            one, one_e2e = served_aggregate(client, "bench", 1, args.tokens)
            direct = direct_single(gguf, args.tokens, args.threads, n_ctx)
            results["single"].append(one / direct)
            for n in streams:
                raw_n = raw_batched(gguf, n, args.tokens, args.threads, n_ctx)
                agg, e2e = served_aggregate(client, "bench", n, args.tokens)
                results["raw"].setdefault(n, []).append(raw_n / raw1)
                results["server"].setdefault(n, []).append(agg / one)
                results["end_to_end"].setdefault(n, []).append(e2e / one_e2e)
                print(f"  round {r + 1} x{n}: raw {raw_n / raw1:.2f}  server {agg / one:.2f}  "
                      f"end to end {e2e / one_e2e:.2f}  (1 stream: raw {raw1:.1f}, server "
                      f"{one:.1f} tok/s)", flush=True)
            # the generated model's byte-level vocabulary needs about 3x the tokens: shorter
            # passages keep its grounded prompt inside the 1024-token slot
            chars = 1000 if name == "smollm2" else 300
            first = ttft(client, "bench", grounded_messages(r, "What is the shell?", chars))
            second = ttft(client, "bench", grounded_messages(r, "What does git commit do?", chars))
            results["prefix"].append(second / first)
            print(f"  round {r + 1}: single /v1 ÷ direct {one / direct:.3f}; prefix ttft "
                  f"{second * 1e3:.0f} ms ÷ {first * 1e3:.0f} ms = {second / first:.3f}", flush=True)
    finally:
        served.stop()
    print(f"{name} ({results['size_mb']} MB), {args.tokens} tokens, {args.threads} threads, "
          f"{args.rounds} rounds: median [min-max]")
    for n in streams:
        ratio = [s / r for s, r in zip(results["server"][n], results["raw"][n], strict=True)]
        print(f"  x{n:<2} raw {spread(results['raw'][n])}  server {spread(results['server'][n])}"
              f"  server/raw {spread(ratio)} (goal >= 0.9)  end to end "
              f"{spread(results['end_to_end'][n])}")
    print(f"  single stream /v1 ÷ direct Llama: {spread(results['single'])} (goal >= 0.97)")
    print(f"  prefix cache: second grounded ttft ÷ first: {spread(results['prefix'])}")
    return results


def main() -> None:
    """Run the benchmark for each model and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="smollm2,generated")
    parser.add_argument("--streams", default="4,8,16")
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    from _setup import install_bench_model, install_model_file

    out = []
    for name in args.models.split(","):
        if name == "smollm2":
            from jupyter_llm.testing.real_models import fetch

            work, gguf, registry = install_model_file("batch-bench-", fetch("smollm2"))
        else:
            work, gguf, registry = install_bench_model(
                "batch-bench-", n_embd=1536, n_layer=20, n_head=12, context_length=2048,
                quantize="q8_0")
        out.append(bench_model(name, gguf, registry, work, args))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
