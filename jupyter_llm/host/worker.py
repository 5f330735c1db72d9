"""The worker process: one local model, driven over stdin/stdout by ``WorkerModel``.

Run as ``python -m jupyter_llm.host.worker``. It creates the model through the plugin
registry (the backend named by the model's registry entry, e.g. ``llama_cpp``), so any
``in_worker`` backend runs here. The main thread runs one command at a time (a llama.cpp
context is single-stream). Between two tokens it looks for a ``cancel``
without blocking: on POSIX it polls stdin itself, so stopping never waits for another
thread to be scheduled; elsewhere a reader thread takes the commands. When the parent
goes away (stdin closes), the worker exits.
"""

from __future__ import annotations

import collections
import os
import queue
import sys
import threading
from typing import IO, Any

__all__ = ["main"]


class _Worker:
    """The child's state: the loaded model, commands not yet run and the cancelled ids."""

    def __init__(self, inp: IO[bytes], out: IO[bytes]) -> None:
        self.inp = inp
        self.out = out
        self.pending: collections.deque[tuple[Any, ...]] = collections.deque()
        self.cancelled: set[int] = set()
        self.model: Any = None
        self.polling = os.name == "posix"
        self.commands: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        if not self.polling:
            threading.Thread(target=self._read_commands, name="jupyter-llm-worker-reader",
                             daemon=True).start()

    def send(self, message: tuple[Any, ...]) -> None:
        """Write one message to the parent (only the main thread writes)."""
        from .protocol import write_frame

        write_frame(self.out, message)

    def _receive(self) -> tuple[Any, ...]:
        """Read one command (blocking); end of file reads as ``quit``."""
        from .protocol import read_frame

        try:
            message = read_frame(self.inp)
        except Exception:  # noqa: BLE001 - a torn pipe means the parent is gone
            message = None
        return ("quit",) if message is None else message

    def _read_commands(self) -> None:
        """Reader thread (non-POSIX): note cancellations at once, queue the rest."""
        while True:
            message = self._receive()
            if message[0] == "cancel":
                self.cancelled.add(message[1])
                continue
            self.commands.put(message)
            if message[0] == "quit":
                return

    def _take(self, message: tuple[Any, ...]) -> None:
        if message[0] == "cancel":
            self.cancelled.add(message[1])
        else:
            self.pending.append(message)

    def poll(self) -> None:
        """Take the commands that have arrived, without blocking (POSIX)."""
        if not self.polling:
            return
        import select

        while not (self.pending and self.pending[-1][0] == "quit") and \
                select.select([self.inp], [], [], 0)[0]:
            self._take(self._receive())

    def next_command(self) -> tuple[Any, ...]:
        """The next command to run, in arrival order."""
        if not self.polling:
            return self.commands.get()
        while not self.pending:
            self._take(self._receive())
        return self.pending.popleft()

    def run(self) -> None:
        """Main loop: execute commands in arrival order until ``quit``."""
        from .protocol import error_to_wire

        while True:
            message = self.next_command()
            kind = message[0]
            if kind == "quit":
                return
            rid = message[1]
            if self.model is not None and hasattr(self.model, "should_stop"):
                self.model.should_stop = self._stopper(rid)  # reaches tokenising and embedding
            try:
                if kind == "load":
                    self.send(("ok", rid, self.load(**message[2])))
                elif kind == "exec":
                    self.execute(rid, message[2])
                elif kind == "embed":  # texts -> vectors; {"texts"} -> (vectors, prompt tokens)
                    payload = message[2]
                    self.send(("ok", rid, self.model.embed_with_usage(payload["texts"])
                               if isinstance(payload, dict) else self.model.embed(payload)))
                else:
                    raise ValueError(f"unknown worker command {kind!r}")
            except BrokenPipeError:  # the parent is gone
                return
            except Exception as e:  # noqa: BLE001 - every error goes back to the parent
                self.send(("err", rid, error_to_wire(e)))
            finally:
                self.cancelled.discard(rid)

    def _stopper(self, rid: int) -> Any:
        """A check the model calls during long work: has ``rid`` been cancelled?"""
        def stopped() -> bool:
            self.poll()
            return rid in self.cancelled

        return stopped

    def load(self, *, backend: str, spec: Any, path: str | None, n_ctx: int | None,
             n_threads: int | None) -> dict[str, Any]:
        """Create the model through the plugin that registered ``backend`` and load it;
        return what the parent shows in ``ps``."""
        from ..plugins import get_backend

        self.model = get_backend(backend, spec).create(spec, path=path, n_ctx=n_ctx,
                                                        n_threads=n_threads)
        self.model.load(n_ctx, n_threads)
        return {"n_ctx": self.model.context_size, "pid": os.getpid(),
                "chat_template": getattr(self.model, "chat_template_info", None)}

    def execute(self, rid: int, request: Any) -> None:
        """Stream one generation, stopping within a token of a ``cancel``."""
        from ..errors import Cancelled
        from ..models import Finish

        self.poll()
        if rid in self.cancelled:
            self.send(("fin", rid, "cancelled", (0, 0)))
            return
        stream = self.model.execute(request)
        count = 0
        try:
            for event in stream:
                if isinstance(event, Finish):
                    usage = event.usage
                    self.send(("fin", rid, event.reason,
                               (usage.prompt_tokens, usage.completion_tokens) if usage else None,
                               event.warnings))
                    return
                count += 1
                self.send(("tok", rid, event))
                self.poll()
                if rid in self.cancelled:  # the prompt's token count is unknown here
                    self.send(("fin", rid, "cancelled", (0, count)))
                    return
            self.send(("fin", rid, "stop", None))
        except Cancelled:  # cancelled while the model tokenised a long prompt
            self.send(("fin", rid, "cancelled", (0, count)))
        finally:
            stream.close()


def main() -> None:
    """Entry point: keep the protocol on a private copy of stdout, send fd 1 to stderr."""
    os.environ.setdefault("GGML_NO_BACKTRACE", "1")
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # C code printing to stdout can't corrupt frames
    inp = os.fdopen(os.dup(sys.stdin.fileno()), "rb", buffering=0)  # unbuffered: select() is exact
    try:
        _Worker(inp, out).run()
    except BrokenPipeError:
        pass
    os._exit(0)  # skip interpreter teardown: llama.cpp's globals need no cleanup


if __name__ == "__main__":
    main()
