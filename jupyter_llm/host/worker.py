"""The worker process: one local model, driven over stdin/stdout by ``WorkerModel``.

Run as ``python -m jupyter_llm.host.worker``. It creates the model through the plugin
registry (the backend named by the model's registry entry, e.g. ``llama_cpp``), so any
``in_worker`` backend runs here. Between two tokens the main thread looks for new commands
without blocking: on POSIX it polls stdin itself, so stopping never waits for another
thread to be scheduled; elsewhere a reader thread takes the commands. When the parent
goes away (stdin closes), the worker exits.

A model that batches (``batching``: llama.cpp with ``parallel`` > 1) runs the batch loop:
each turn takes the commands that arrived, puts new generations into free slots
(``submit``), passes cancellations on, and runs one decode step (``step``) of every running
sequence, sending each piece and finish under its request id. Other models run one
command at a time. Embedding commands that queue up are embedded together.
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
        self.running: set[int] = set()  # requests in the batch
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
        """Take the commands that have arrived, without blocking."""
        if not self.polling:
            while True:
                try:
                    self.pending.append(self.commands.get_nowait())
                except queue.Empty:
                    return
        import select

        while not (self.pending and self.pending[-1][0] == "quit") and \
                select.select([self.inp], [], [], 0)[0]:
            self._take(self._receive())

    def wait(self) -> None:
        """Block until a command waits in ``pending``."""
        while not self.pending:
            if self.polling:
                self._take(self._receive())
            else:
                self.pending.append(self.commands.get())

    @property
    def batch(self) -> Any:
        """The model when it runs requests batched (``submit``/``step``), else None."""
        return self.model if getattr(self.model, "batching", False) else None

    def run(self) -> None:
        """Main loop: commands in arrival order until ``quit``; with a batching model, one
        decode step of the running requests between two looks at the commands."""
        while True:
            batch = self.batch
            if batch is not None and batch.active:
                self.poll()
            else:
                self.wait()
            if not self.dispatch():
                return
            batch = self.batch
            if batch is not None:
                for rid in self.cancelled & self.running:
                    batch.cancel(rid)
                if batch.active:
                    self.step(batch)

    def dispatch(self) -> bool:
        """Start the commands waiting in ``pending``; False on ``quit``. A generation joins
        the batch while a slot is free; the others run to their end here."""
        from ..errors import Cancelled
        from .protocol import error_to_wire

        while self.pending:
            message = self.pending[0]
            kind = message[0]
            if kind == "quit":
                return False
            batch = self.batch
            if kind == "exec" and batch is not None and message[1] not in self.cancelled:
                if batch.free_slots == 0:
                    return True  # it waits for a sequence to finish
                self._watch(message[1])
                try:
                    if not batch.submit(message[1], message[2]):
                        return True  # it needs a reload: once the batch has drained
                    self.running.add(message[1])
                except BrokenPipeError:
                    return False
                except Cancelled:  # while its prompt was being tokenised
                    self.send(("fin", message[1], "cancelled", (0, 0)))
                except Exception as e:  # noqa: BLE001 - the error goes back to the parent
                    self.send(("err", message[1], error_to_wire(e)))
                self.pending.popleft()
                continue
            self.pending.popleft()
            if kind == "embed":
                self.embed([message, *self._more_embeds()])
            elif not self.run_one(message):
                return False
        return True

    def _more_embeds(self) -> list[tuple[Any, ...]]:
        """The embedding commands queued right behind one, to embed in one batch."""
        self.poll()
        more = []
        while self.pending and self.pending[0][0] == "embed":
            more.append(self.pending.popleft())
        return more

    def run_one(self, message: tuple[Any, ...]) -> bool:
        """Run one command to its end; False when the parent is gone."""
        from .protocol import error_to_wire

        kind, rid = message[0], message[1]
        self._watch(rid)
        try:
            if kind == "load":
                self.send(("ok", rid, self.load(**message[2])))
            elif kind == "exec":
                self.execute(rid, message[2])
            else:
                raise ValueError(f"unknown worker command {kind!r}")
        except BrokenPipeError:  # the parent is gone
            return False
        except Exception as e:  # noqa: BLE001 - every error goes back to the parent
            self.send(("err", rid, error_to_wire(e)))
        finally:
            self.cancelled.discard(rid)
        return True

    def embed(self, messages: list[tuple[Any, ...]]) -> None:
        """Answer embedding commands: texts -> vectors; {"texts"} -> (vectors, prompt
        tokens). Several requests are embedded together when the model can."""
        from .protocol import error_to_wire

        groups = [m[2]["texts"] if isinstance(m[2], dict) else m[2] for m in messages]
        self._watch(*(m[1] for m in messages))
        many = getattr(self.model, "embed_groups", None)
        try:
            results = many(groups) if callable(many) and len(groups) > 1 else \
                [self.model.embed_with_usage(g) for g in groups]
        except Exception:  # noqa: BLE001 - one bad input must not fail the others: one by one
            if len(messages) == 1:
                self.send(("err", messages[0][1], error_to_wire(sys.exc_info()[1])))
                return
            for m in messages:
                self.embed([m])
            return
        for m, (vectors, tokens) in zip(messages, results, strict=True):
            self.send(("ok", m[1], (vectors, tokens) if isinstance(m[2], dict) else vectors))

    def step(self, batch: Any) -> None:
        """One decode step of the batch; send its pieces and finishes."""
        from .protocol import error_to_wire

        try:
            events = batch.step()
        except Exception as e:  # noqa: BLE001 - a failed decode fails the requests in it
            for rid in batch.reset_batch():
                self.send(("err", rid, error_to_wire(e)))
                self._ended(rid)
            return
        from ..models import Finish

        stats = None
        for rid, event in events:
            if isinstance(event, Finish):
                usage = event.usage
                stats = stats or batch.batch_stats()
                self.send(("fin", rid, event.reason,
                           (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)
                           if usage else None,
                           event.warnings, stats))
                self._ended(rid)
            else:
                self.send(("tok", rid, event))

    def _watch(self, *rids: int) -> None:
        """Let the model check, during long work (tokenising a long prompt, embedding in
        batches), whether the parent has cancelled all of ``rids``."""
        if self.model is None or not hasattr(self.model, "should_stop"):
            return

        def stopped() -> bool:
            self.poll()
            return all(rid in self.cancelled for rid in rids)

        self.model.should_stop = stopped

    def _ended(self, rid: int) -> None:
        self.running.discard(rid)
        self.cancelled.discard(rid)

    def load(self, *, backend: str, spec: Any, path: str | None, n_ctx: int | None,
             n_threads: int | None, parallel: int | None = None) -> dict[str, Any]:
        """Create the model through the plugin that registered ``backend`` and load it;
        return what the parent shows in ``ps``."""
        from ..plugins import get_backend

        found = get_backend(backend, spec)
        extra = {"parallel": parallel} if parallel and getattr(found, "batching", False) else {}
        self.model = found.create(spec, path=path, n_ctx=n_ctx, n_threads=n_threads, **extra)
        self.model.load(n_ctx, n_threads)
        stats = self.model.batch_stats() if self.batch is not None else None
        return {"n_ctx": self.model.context_size, "pid": os.getpid(),
                "chat_template": getattr(self.model, "chat_template_info", None),
                "parallel": getattr(self.model, "parallel", 1) if self.batch is not None else 1,
                "batch": stats}

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
