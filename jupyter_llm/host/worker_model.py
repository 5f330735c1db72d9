"""``WorkerModel``: a ``Model`` in the parent that runs in a worker process.

It stands in for a model of an ``in_worker`` backend (llama.cpp, or a plugin's): the parent
starts ``python -m jupyter_llm.host.worker`` with pipes, sends it a ``load`` naming the
backend (the worker creates the model through the plugins),
and then one command per execution or embedding. A reader thread routes the worker's
messages to the waiting streams by request id. When the worker dies (llama.cpp abort,
out of memory, a kill), every waiting stream gets ``WorkerCrashed`` and ``on_exit`` tells
the host, which forgets the model so the next request loads it again.
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BackendError, JupyterLLMError, ModelLoadError, WorkerCrashed
from ..models import Backend, Finish, Model, Request, Usage, replace_hint
from .protocol import error_from_wire, read_frame, write_frame

if TYPE_CHECKING:
    from ..registry import ModelSpec

__all__ = ["WorkerModel", "WorkerStream"]

log = logging.getLogger(__name__)

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
STOP_TIMEOUT_S = 5.0


class WorkerStream:
    """The messages of one execution, as an iterator of text pieces and a final ``Finish``.

    ``cancel()`` may be called from any thread; the worker stops within about one token
    and the stream then ends with ``Finish("cancelled")``.
    """

    def __init__(self, worker: WorkerModel, rid: int) -> None:
        self._worker = worker
        self._rid = rid
        self._messages: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._ended = False
        self._pieces = 0
        self._on_done: list[Callable[[], None]] = []
        self._done = threading.Event()
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[str | Finish]:
        return self

    def __next__(self) -> str | Finish:
        if self._ended:
            raise StopIteration
        message = self._messages.get()
        kind = message[0]
        if kind == "tok":
            self._pieces += 1
            return message[2]
        self._ended = True
        if kind == "fin":
            if len(message) > 5 and message[5] is not None:
                self._worker.info["batch"] = message[5]
            usage = message[3]
            return Finish(message[2], Usage(*usage) if usage else Usage(completion_tokens=self._pieces),
                          list(message[4]) if len(message) > 4 and message[4] else [])
        raise message[2]

    def cancel(self) -> None:
        """Ask the worker to stop this execution (thread-safe; no effect once it ended)."""
        if not self._done.is_set():
            self._worker._send_quiet(("cancel", self._rid))

    def close(self) -> None:
        """Stop the execution when the consumer abandons the stream."""
        self.cancel()

    @property
    def received(self) -> int:
        """Messages received from the worker so far (read or not)."""
        return self._pieces + self._messages.qsize()

    @property
    def done(self) -> bool:
        """True once the worker finished this execution (its slot is free)."""
        return self._done.is_set()

    def add_done_callback(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from the reader thread) when the worker is done with this execution."""
        with self._lock:
            if not self._done.is_set():
                self._on_done.append(callback)
                return
        callback()

    def _deliver(self, message: tuple[Any, ...]) -> None:
        self._messages.put(message)
        if message[0] != "tok":
            with self._lock:
                self._done.set()
                callbacks, self._on_done = self._on_done, []
            for callback in callbacks:
                try:
                    callback()
                except Exception:  # noqa: BLE001 - never kill the reader thread
                    log.exception("done callback failed")


class WorkerModel(Model):
    """A model of an ``in_worker`` backend, run in its own process; the same contract as
    the backend's own model, with the backend's options."""

    def __init__(self, backend: Backend, spec: ModelSpec, *, path: str | Path,
                 n_ctx: int | None = None, n_threads: int | None = None,
                 parallel: int | None = None,
                 on_exit: Callable[[WorkerModel, JupyterLLMError | None], None] | None = None,
                 ) -> None:
        super().__init__(spec.id, spec)
        self.Options = backend.Options  # type: ignore[misc]
        self.backend = backend.name  # type: ignore[misc]
        self.path = Path(path)
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.requested_parallel = parallel
        self.on_exit = on_exit
        self.info: dict[str, Any] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._write_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._streams: dict[int, WorkerStream] = {}
        self._ids = itertools.count(1)
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)
        self._closing = False
        self._dead: JupyterLLMError | None = None
        self._loading = False

    # -- lifecycle -----------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        """The worker's process id (None before ``load``)."""
        return self._proc.pid if self._proc else None

    @property
    def context_size(self) -> int | None:
        """The context size the worker's model loaded with."""
        return self.info.get("n_ctx")

    @property
    def parallel(self) -> int:
        """Requests the worker runs at once (its batch slots; 1 without batching)."""
        return int(self.info.get("parallel") or 1)

    def batch_stats(self) -> dict[str, Any] | None:
        """The batch's slots and prefix-cache counters, as of the last finished request."""
        return self.info.get("batch")

    @property
    def alive(self) -> bool:
        """True while the worker process runs and serves."""
        return self._proc is not None and self._dead is None and self._proc.poll() is None

    def load(self, n_ctx: int | None = None, n_threads: int | None = None) -> dict[str, Any]:
        """Start the worker and load the model in it; raise ``ModelLoadError`` if that fails."""
        if self._proc is not None:
            return self.info
        env = dict(os.environ, GGML_NO_BACKTRACE="1", PYTHONUNBUFFERED="1")
        if Path(_PACKAGE_ROOT).name not in ("site-packages", "dist-packages"):
            # a source checkout: let the child import the same jupyter_llm as this process
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        self._loading = True
        self._proc = subprocess.Popen(
            [sys.executable or "python", "-m", "jupyter_llm.host.worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
            close_fds=True)
        threading.Thread(target=self._read_messages, name=f"jupyter-llm-{self.model_id}-reader",
                         daemon=True).start()
        threading.Thread(target=self._drain_stderr, name=f"jupyter-llm-{self.model_id}-stderr",
                         daemon=True).start()
        try:
            self.info = self._call("load", {
                "backend": self.backend, "spec": self.spec, "path": str(self.path),
                "n_ctx": n_ctx or self.n_ctx, "n_threads": n_threads or self.n_threads,
                "parallel": self.requested_parallel})
        except WorkerCrashed as e:
            self.close()
            raise ModelLoadError(
                f"{self._native} crashed while loading {self.path.name} for model "
                f"{self.model_id!r} ({e.details.get('exit')}). The file is probably malformed or "
                f"made for a newer {self._native}: {self._replace_hint()}, or choose another "
                "model or quantization.",
                details=e.details) from None
        except BaseException:
            self.close()
            raise
        finally:
            self._loading = False
        return self.info

    def close(self) -> None:
        """Stop the worker (politely, then by force) and free its memory."""
        proc = self._proc
        if proc is None:
            return
        with self._state_lock:
            self._closing = True
            running = list(self._streams)
        for rid in running:  # stop a generation at once rather than waiting for its end
            self._send_quiet(("cancel", rid))
        self._send_quiet(("quit",))
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            try:
                if pipe:
                    pipe.close()
            except OSError:
                pass

    # -- running -------------------------------------------------------------------------
    def execute(self, request: Request) -> WorkerStream:
        """Start one execution in the worker and return its stream."""
        stream = self._open()
        self._send(("exec", stream._rid, request))
        return stream

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Embed texts in the worker."""
        return self._call("embed", list(texts))

    def embed_with_usage(self, texts: list[str], *, cancel: threading.Event | None = None,
                         ) -> tuple[list[list[float]], int]:
        """Embed texts in the worker; also how many tokens they took. Setting ``cancel``
        stops the worker's tokenising and embedding (``Cancelled`` is raised)."""
        vectors, tokens = self._call("embed", {"texts": list(texts)}, cancel=cancel)
        return vectors, tokens

    @property
    def chat_template_info(self) -> dict[str, Any] | None:
        """The chat format the worker's model chose at load (None for embedding models)."""
        return self.info.get("chat_template") if self.info else None

    def _call(self, kind: str, payload: Any, *, cancel: threading.Event | None = None) -> Any:
        stream = self._open()
        self._send((kind, stream._rid, payload))
        while True:
            try:
                message = stream._messages.get(timeout=None if cancel is None else 0.05)
                break
            except queue.Empty:
                if cancel is not None and cancel.is_set():
                    stream.cancel()  # the worker answers Cancelled at its next check
                    cancel = None
        if message[0] == "err":
            raise message[2]
        return message[2]

    def _open(self) -> WorkerStream:
        with self._state_lock:
            if self._dead is not None or self._proc is None or self._closing:
                raise self._dead or WorkerCrashed(
                    f"Model {self.model_id!r} is not running; load it again.",
                    details={"model": self.model_id})
            stream = WorkerStream(self, next(self._ids))
            self._streams[stream._rid] = stream
            return stream

    def _send(self, message: tuple[Any, ...]) -> None:
        """Send a command; if the worker is gone, the reader thread fails the stream."""
        self._send_quiet(message)

    def _send_quiet(self, message: tuple[Any, ...]) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None:
            return
        try:
            with self._write_lock:
                write_frame(proc.stdin, message)
        except (OSError, ValueError):
            pass

    # -- the reader threads ----------------------------------------------------------------
    def _read_messages(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        while True:
            try:
                message = read_frame(proc.stdout)
            except Exception:  # noqa: BLE001 - a torn frame is a dead worker
                message = None
            if message is None:
                break
            with self._state_lock:
                stream = self._streams.get(message[1])
                if stream is not None and message[0] != "tok":
                    del self._streams[message[1]]
            if stream is None:
                continue
            if message[0] == "err":
                message = ("err", message[1], error_from_wire(message[2], model_id=self.model_id))
            stream._deliver(message)
        self._exited(proc)

    def _exited(self, proc: subprocess.Popen[bytes]) -> None:
        try:
            code = proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        with self._state_lock:
            expected = self._closing
            pending, self._streams = list(self._streams.values()), {}
            if expected:
                error: JupyterLLMError = BackendError(
                    f"Model {self.model_id!r} was unloaded while this request ran; send it again.",
                    details={"model": self.model_id})
            else:
                error = self._crash_error(code)
            self._dead = error
        if not expected and not self._loading:
            log.warning("%s", error.message)
        if self.on_exit is not None and not self._loading:
            try:  # first forget the model, so whoever sees the error can load it again
                self.on_exit(self, None if expected else error)
            except Exception:  # noqa: BLE001 - the streams must still get their error
                log.exception("on_exit callback failed")
        for stream in pending:
            stream._deliver(("err", stream._rid, error))

    def _replace_hint(self) -> str:
        return replace_hint(self.model_id, self.spec, self.path)

    @property
    def _native(self) -> str:
        """The backend's name as users know it, for error messages."""
        return "llama.cpp" if self.backend == "llama_cpp" else f"the {self.backend} backend"

    def _crash_error(self, code: int) -> WorkerCrashed:
        exit_text = _describe_exit(code)
        last = next((line for line in reversed(self._stderr) if line.strip()), "")
        said = f' Its last words: "{last.strip()}".' if last else ""
        return WorkerCrashed(
            f"The worker process of model {self.model_id!r} ({self.path.name}) died ({exit_text})."
            f"{said} {self._native[0].upper()}{self._native[1:]} aborts on some malformed or "
            "unsupported model files, and the system "
            "kills processes that run out of memory. The model was unloaded; the next request "
            f"loads it again. If this repeats, {self._replace_hint()}, or try a smaller model.",
            details={"model": self.model_id, "file": str(self.path), "exit": exit_text,
                     "exit_code": code, "stderr": list(self._stderr)[-5:]})

    def _drain_stderr(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stderr is not None
        for raw in iter(proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            self._stderr.append(line)
            log.debug("[%s worker] %s", self.model_id, line)

    def __repr__(self) -> str:
        return f"<WorkerModel {self.model_id!r} pid={self.pid}>"


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"
