"""The worker process: one llama.cpp model, driven over stdin/stdout by ``WorkerModel``.

Run as ``python -m jupyter_llm.host.worker``. A reader thread takes commands from
stdin, so a ``cancel`` arrives while the main thread is generating; the main thread
runs one command at a time (a llama.cpp context is single-stream) and checks for
cancellation between tokens. When the parent goes away (stdin closes), the worker exits.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from typing import IO, Any

__all__ = ["main"]


class _Worker:
    """The child's state: the loaded model, the command queue and the cancelled ids."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.commands: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self.cancelled: set[int] = set()
        self.model: Any = None

    def send(self, message: tuple[Any, ...]) -> None:
        """Write one message to the parent (only the main thread writes)."""
        from .protocol import write_frame

        write_frame(self.out, message)

    def read_commands(self, inp: IO[bytes]) -> None:
        """Reader thread: queue commands, note cancellations at once, quit at end of file."""
        from .protocol import read_frame

        while True:
            try:
                message = read_frame(inp)
            except Exception:  # noqa: BLE001 - a torn pipe means the parent is gone
                message = None
            if message is None:
                self.commands.put(("quit",))
                return
            if message[0] == "cancel":
                self.cancelled.add(message[1])
            else:
                self.commands.put(message)

    def run(self) -> None:
        """Main loop: execute commands in arrival order until ``quit``."""
        from .protocol import error_to_wire

        while True:
            message = self.commands.get()
            kind = message[0]
            if kind == "quit":
                return
            rid = message[1]
            try:
                if kind == "load":
                    self.send(("ok", rid, self.load(**message[2])))
                elif kind == "exec":
                    self.execute(rid, message[2])
                elif kind == "embed":
                    self.send(("ok", rid, self.model.embed(message[2])))
                else:
                    raise ValueError(f"unknown worker command {kind!r}")
            except BrokenPipeError:  # the parent is gone
                return
            except Exception as e:  # noqa: BLE001 - every error goes back to the parent
                self.send(("err", rid, error_to_wire(e)))
            finally:
                self.cancelled.discard(rid)

    def load(self, *, model_id: str, spec: Any, path: str, embedding: bool,
             n_ctx: int | None, n_threads: int | None) -> dict[str, Any]:
        """Load the model; return what the parent shows in ``ps``."""
        from ..backends.llama_cpp import LlamaCppModel

        self.model = LlamaCppModel(model_id, spec, path=path, n_ctx=n_ctx, n_threads=n_threads,
                                   embedding=embedding)
        llama = self.model.load()
        return {"n_ctx": llama.n_ctx(), "n_threads": self.model.n_threads, "pid": os.getpid()}

    def execute(self, rid: int, request: Any) -> None:
        """Stream one generation, stopping within a token of a ``cancel``."""
        from ..models import Finish

        if rid in self.cancelled:
            self.send(("fin", rid, "cancelled", None))
            return
        stream = self.model.execute(request)
        count = 0
        try:
            for event in stream:
                if isinstance(event, Finish):
                    usage = event.usage
                    self.send(("fin", rid, event.reason,
                               (usage.prompt_tokens, usage.completion_tokens) if usage else None))
                    return
                count += 1
                self.send(("tok", rid, event))
                if rid in self.cancelled:  # the prompt's token count is unknown here
                    self.send(("fin", rid, "cancelled", (0, count)))
                    return
            self.send(("fin", rid, "stop", None))
        finally:
            stream.close()


def main() -> None:
    """Entry point: keep the protocol on a private copy of stdout, send fd 1 to stderr."""
    os.environ.setdefault("GGML_NO_BACKTRACE", "1")
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # C code printing to stdout can't corrupt frames
    worker = _Worker(out)
    reader = threading.Thread(target=worker.read_commands, args=(sys.stdin.buffer,),
                              name="jupyter-llm-worker-reader", daemon=True)
    reader.start()
    try:
        worker.run()
    except BrokenPipeError:
        pass
    os._exit(0)  # skip interpreter teardown: llama.cpp's globals need no cleanup


if __name__ == "__main__":
    main()
