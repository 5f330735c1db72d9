"""Memory of 4 notebook kernels prompting one model: through one server vs a copy each.

Shared: ``jupyter llm serve`` runs the model once (one worker process); 4 real ipykernel
kernels (jupyter_client) get ``JUPYTER_LLM_URL``/``TOKEN`` and prompt through it.
Separate: the same 4 kernels without those variables; each ``connect()`` makes an in-process
host with its own worker and its own copy of the model.

Prints, measured in this run, the total RSS and PSS (proportional set size: pages shared
between processes, such as an mmapped model file, are split between them) of every process
involved (server + workers + kernels, or kernels + their workers), and the ratios.

    python benchmarks/kernel_memory.py [--n-embd 768] [--n-layer 8] [--kernels 4]
"""

from __future__ import annotations

import argparse
import os

CODE = ("import jupyter_llm\n"
        "c = jupyter_llm.connect()\n"
        "r = c.prompt('Summarise the lesson', 'bench', max_tokens=32, temperature=0)\n"
        "print(type(c).__name__, len(r.text()))\n")


def tree_memory(pids: list[int]) -> tuple[float, float, int]:
    """(RSS MB, PSS MB, process count) of these processes and all their descendants."""
    import psutil

    procs: dict[int, psutil.Process] = {}
    for pid in pids:
        p = psutil.Process(pid)
        procs[pid] = p
        for child in p.children(recursive=True):
            procs[child.pid] = child
    rss = pss = 0
    for p in procs.values():
        info = p.memory_full_info()
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
    return rss / 1e6, pss / 1e6, len(procs)


def run_kernels(n: int, env: dict[str, str]) -> tuple[list, list[int]]:
    """Start ``n`` kernels with ``env``, prompt in each, return (managers, pids)."""
    from jupyter_client import KernelManager

    managers, pids = [], []
    for _ in range(n):
        km = KernelManager(kernel_name="python3")
        km.start_kernel(env=env)
        managers.append(km)
    for km in managers:
        client = km.client()
        client.start_channels()
        client.wait_for_ready(timeout=120)
        out: list[str] = []
        reply = client.execute_interactive(
            CODE, timeout=300, output_hook=lambda m, out=out: out.append(m["content"].get("text", "")))
        client.stop_channels()
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"kernel failed: {reply['content']}")
        print("   kernel:", "".join(out).strip())
        pids.append(km.provisioner.process.pid)
    return managers, pids


def main() -> None:
    """Run both scenarios and print the memory totals and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-embd", type=int, default=768)
    parser.add_argument("--n-layer", type=int, default=8)
    parser.add_argument("--kernels", type=int, default=4)
    args = parser.parse_args()

    from _setup import install_bench_model

    from tests.fixtures.server import start_serve

    work, gguf, registry = install_bench_model("kernel-mem-", n_embd=args.n_embd,
                                               n_layer=args.n_layer, context_length=1024)
    os.environ["JUPYTER_LLM_REGISTRY_PATH"] = str(registry)
    print(f"model: {gguf.stat().st_size / 1e6:.0f} MB GGUF; {args.kernels} kernels")

    base_env = {k: v for k, v in os.environ.items()
                if k not in ("JUPYTER_LLM_URL", "JUPYTER_LLM_TOKEN")}

    served = start_serve(work, "--port", "0")
    try:
        print("shared: kernels -> jupyter llm serve")
        managers, pids = run_kernels(args.kernels, {
            **base_env, "JUPYTER_LLM_URL": served.url, "JUPYTER_LLM_TOKEN": served.token})
        shared = tree_memory([served.process.pid, *pids])
        for km in managers:
            km.shutdown_kernel(now=True)
    finally:
        served.stop()

    print("separate: each kernel loads its own copy")
    managers, pids = run_kernels(args.kernels, base_env)
    separate = tree_memory(pids)
    for km in managers:
        km.shutdown_kernel(now=True)

    print(f"shared   (server + workers + kernels): RSS {shared[0]:7.0f} MB, PSS {shared[1]:7.0f} MB,"
          f" {shared[2]} processes")
    print(f"separate (kernels + their workers):    RSS {separate[0]:7.0f} MB, PSS {separate[1]:7.0f}"
          f" MB, {separate[2]} processes")
    print(f"ratio shared / separate: RSS {shared[0] / separate[0]:.2f}, PSS {shared[1] / separate[1]:.2f}")


if __name__ == "__main__":
    main()
