"""``JupyterLLM``: the Jupyter server extension. It owns one ``ModelHost`` (created on first
use), a thread pool for blocking calls, and exports ``JUPYTER_LLM_URL``/``JUPYTER_LLM_TOKEN``
so kernels started by this server talk to it."""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from jupyter_server.auth.authorizer import Authorizer
from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join
from tornado.ioloop import IOLoop
from traitlets import Bool, Dict, Float, Integer, List, Unicode

from .._version import __version__
from .base import AUTH_RESOURCE

__all__ = ["JupyterLLM", "LLMOnlyAuthorizer", "URL_ENV", "TOKEN_ENV"]

URL_ENV = "JUPYTER_LLM_URL"
TOKEN_ENV = "JUPYTER_LLM_TOKEN"
HANDLER_MODULES = ("native", "classroom", "conversations", "collections", "openai_compat", "pantry",
                   "openapi")

# (trait name, Settings field) for every setting the extension exposes as config.
SETTING_TRAITS = ("default_model", "default_embedding_model", "allow_downloads",
                  "allow_url_downloads", "auto_load", "memory_budget_mb", "max_loaded_models",
                  "keep_alive_s", "queue_size", "queue_per_user", "scheduling", "n_threads",
                  "n_ctx", "parallel", "history", "policy_file", "policy", "max_body_mb",
                  "max_prompt_chars", "max_embed_inputs",
                  "allow_model_paths")


class JupyterLLM(ExtensionApp):
    """Large language models for Jupyter: native, OpenAI-compatible and Pantry APIs."""

    name = "jupyter_llm"
    description = "Serve local (llama.cpp) and remote LLMs to notebooks and any OpenAI client."
    version = __version__
    load_other_extensions = False  # `jupyter llm serve`: this API only, no notebook UI
    # A trait (not a plain False): ServerApp passes open_browser to every extension's config,
    # and a plain attribute made it log "Config option `open_browser` not recognized" twice.
    open_browser = Bool(False, config=True, help="Open a browser on start (no UI here: False).")

    data_dir = Unicode(None, allow_none=True, config=True,
                       help="Data directory (models, history, collections); default "
                            "$JUPYTER_LLM_HOME or jupyter_data_dir()/llm.")
    default_model = Unicode(None, allow_none=True, config=True,
                            help="Chat model used when none is named (id, alias or tags:...).")
    default_embedding_model = Unicode(None, allow_none=True, config=True,
                                      help="Embedding model used when none is named.")
    allow_downloads = Bool(None, allow_none=True, config=True,
                           help="Allow pulling registry models (default True).")
    allow_url_downloads = Bool(None, allow_none=True, config=True,
                               help="Allow downloading URLs that are in no registry (default False).")
    auto_load = Bool(None, allow_none=True, config=True,
                     help="Load a model on first use instead of answering 409 (default True).")
    memory_budget_mb = Integer(None, allow_none=True, config=True,
                               help="RAM for loaded models (default 70% of available memory).")
    max_loaded_models = Integer(None, allow_none=True, config=True,
                                help="Most local models loaded at once (default 3).")
    keep_alive_s = Float(None, allow_none=True, config=True,
                         help="Unload a local model after this many idle seconds (0: never).")
    queue_size = Integer(None, allow_none=True, config=True,
                         help="Requests waiting per model before answering 503 busy (default 16).")
    queue_per_user = Integer(None, allow_none=True, config=True,
                             help="Requests one user may have waiting per model before "
                                  "answering 429 (default: no cap).")
    scheduling = Unicode(None, allow_none=True, config=True,
                         help='Who goes next in a model\'s queue: "fair" (round-robin by user, '
                              'the default) or "fifo" (first come, first served).')
    n_threads = Integer(None, allow_none=True, config=True, help="CPU threads per local model.")
    n_ctx = Integer(None, allow_none=True, config=True, help="Context window of local models.")
    parallel = Integer(None, allow_none=True, config=True,
                       help="Requests a local model decodes together (default: from the budget).")
    history = Bool(None, allow_none=True, config=True,
                   help="Log requests to history.sqlite (default True).")
    max_body_mb = Float(None, allow_none=True, config=True,
                        help="Largest request body in MB; larger ones get 413 (default 16).")
    max_prompt_chars = Integer(None, allow_none=True, config=True,
                               help="Most characters in one prompt or embedding request "
                                    "(default 1,000,000); checked before tokenising.")
    max_embed_inputs = Integer(None, allow_none=True, config=True,
                               help="Most inputs in one embedding request (default 2048).")
    allow_model_paths = List(Unicode(), default_value=None, allow_none=True, config=True,
                             help="Folders whose GGUF files requests may load by path "
                                  "(default: none; paths in requests are refused).")
    policy_file = Unicode(None, allow_none=True, config=True,
                          help="Classroom policy file (YAML or JSON): roles, per-user limits, "
                               "allowed models, history access; reloaded when it changes.")
    policy = Dict(None, allow_none=True, config=True,
                  help="Classroom policy given inline (the policy file's format).")
    thread_pool_size = Integer(64, config=True,
                               help="Threads for blocking host calls and streaming generations.")
    export_env = Bool(True, config=True,
                      help=f"Export {URL_ENV} and {TOKEN_ENV} so kernels use this server's host.")

    def initialize_settings(self) -> None:
        """Validate the settings now (cheap); the host itself is created on first use."""
        from ..config import Settings
        from ..redact import add_secret, install_log_redaction

        install_log_redaction()  # every log line of this server, ours or Jupyter's
        token = getattr(getattr(self.serverapp, "identity_provider", None), "token", None)
        add_secret(token if isinstance(token, str) else None)
        if self.data_dir:
            os.environ["JUPYTER_LLM_HOME"] = os.path.expanduser(self.data_dir)
        overrides = {name: getattr(self, name) for name in SETTING_TRAITS}
        self.llm_settings = Settings.from_env(**overrides)
        self._host: Any = None
        self._host_lock = threading.Lock()
        self._collections: Any = None
        self._collections_lock = threading.Lock()
        self._conversations: Any = None
        self.executor = ThreadPoolExecutor(self.thread_pool_size, thread_name_prefix="jupyter-llm")
        self._saved_env: dict[str, str | None] = {}
        if self.export_env:
            self._export_env()
            # The port can still change (port_retries) after extensions load: export again
            # once the loop runs, before any kernel can start.
            IOLoop.current().add_callback(self._export_env)

    def initialize_handlers(self) -> None:
        """Register every handler module's ``default_handlers`` and a JSON 404 under ``llm/``."""
        import importlib

        from .base import NotFoundHandler

        for name in HANDLER_MODULES:
            module = importlib.import_module(f"{__package__}.{name}")
            self.handlers.extend(module.default_handlers)
        self.handlers.append((r"/llm/(.*)", NotFoundHandler))

    # -- the host -------------------------------------------------------------------------
    @property
    def host(self) -> Any:
        """The server's one ``ModelHost`` (created on first use; blocking)."""
        if self._host is None:
            with self._host_lock:
                if self._host is None:
                    from ..host import ModelHost

                    self._host = ModelHost(self.llm_settings, trust_paths=False)
        return self._host

    @property
    def collections(self) -> Any:
        """The server's collections service (``host.collections.HostCollections``: names only,
        ingest paths confined to ``root_dir``; created on first use)."""
        if self._collections is None:
            with self._collections_lock:
                if self._collections is None:
                    from ..host.collections import HostCollections

                    root = self.serverapp.root_dir if self.serverapp is not None else None
                    self._collections = HostCollections(lambda: self.host, root_dir=root,
                                                        names_only=True)
        return self._collections

    @property
    def conversations(self) -> Any:
        """The saved conversations (``host.conversations.Conversations``, per user)."""
        if self._conversations is None:
            from ..host.conversations import Conversations

            self._conversations = Conversations()
        return self._conversations

    def root_dir(self) -> str:
        """The folder the server serves (files it writes, such as exported notebooks, go in)."""
        return self.serverapp.root_dir if self.serverapp is not None else os.getcwd()

    @property
    def history_log(self) -> Any:
        """The request history the host writes to (blocking: may create the host)."""
        history = self.host.history
        if history is None:
            from ..history import History

            history = History()
        return history

    async def stop_extension(self) -> None:
        """Unload every model (killing the workers) and restore the environment."""
        if not hasattr(self, "executor"):  # initialize_settings failed: nothing was started
            return
        colls, self._collections = self._collections, None
        if colls is not None:
            colls.close()
        host, self._host = self._host, None
        if host is not None:
            await asyncio.get_running_loop().run_in_executor(None, host.close)
        self.executor.shutdown(wait=False, cancel_futures=True)
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env = {}

    # -- kernel hand-off --------------------------------------------------------------------
    def server_url(self) -> str:
        """This server's URL including its base_url, e.g. ``http://127.0.0.1:8888/``."""
        serverapp = self.serverapp
        assert serverapp is not None
        # a wildcard or "localhost" (which may resolve to ::1 first) becomes 127.0.0.1
        ip = serverapp.ip if serverapp.ip not in ("", "0.0.0.0", "::", "*", "localhost") \
            else "127.0.0.1"
        host = f"[{ip}]" if ":" in ip else ip
        scheme = "https" if serverapp.certfile else "http"
        return url_path_join(f"{scheme}://{host}:{serverapp.port}", serverapp.base_url)

    def _export_env(self) -> None:
        """Point kernels at this server unless the environment already names another host."""
        serverapp = self.serverapp
        if serverapp is None or (URL_ENV in os.environ and URL_ENV not in self._saved_env):
            return
        token = getattr(serverapp.identity_provider, "token", "") or ""
        for key, value in ((URL_ENV, self.server_url()), (TOKEN_ENV, token)):
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def config_summary(self) -> dict[str, Any]:
        """Version and the non-secret settings, for ``GET llm/api/config``."""
        from .. import paths

        return {"version": __version__, "data_dir": str(paths.data_dir()),
                "settings": self.llm_settings.model_dump(), "host_started": self._host is not None,
                "kernels_host": os.environ.get(URL_ENV)}


class LLMOnlyAuthorizer(Authorizer):
    """For ``jupyter llm serve``: refuse Jupyter's own services (kernels, contents, terminals,
    sessions…), so the token of a shared model host grants no code execution or file access.
    The jupyter_llm routes (resource ``llm``) are allowed to every authenticated user."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        """Allow the ``llm`` resource and the read-only ``api`` one (``/api/status``)."""
        return resource == AUTH_RESOURCE or (resource == "api" and action == "read")


main = launch_new_instance = JupyterLLM.launch_instance
