"""``jupyter llm serve``: the jupyter_llm API (native, ``/v1``, Pantry) without notebooks."""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["register", "run", "DEFAULT_PORT"]

DEFAULT_PORT = 7490


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``serve`` command."""
    p = subparsers.add_parser(
        "serve", help="serve models over HTTP (native API, OpenAI /v1, Pantry) without notebooks",
        description="Run a Jupyter server with only the jupyter_llm extension. If the port is "
                    "taken the next free one is used. Prints the URL and the token.")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.add_argument("--ip", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port-retries", type=int, default=50,
                   help="how many further ports to try when the port is taken (default 50)")
    p.add_argument("--token", default=None,
                   help="the token clients must send (default: a random one; '' disables auth)")
    p.add_argument("--base-url", default="/", help="URL prefix (default /)")
    p.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                   help="extra traitlets config, e.g. --config JupyterLLM.allow_url_downloads=True")
    p.set_defaults(func=run)


def server_argv(args: argparse.Namespace) -> list[str]:
    """The ServerApp command line for these arguments."""
    argv = [f"--ServerApp.port={args.port}", f"--ServerApp.ip={args.ip}",
            f"--ServerApp.port_retries={args.port_retries}", "--ServerApp.open_browser=False",
            f"--ServerApp.base_url={args.base_url}",
            "--ServerApp.authorizer_class=jupyter_llm.server.app.LLMOnlyAuthorizer",
            "--ServerApp.identity_provider_class="
            "jupyter_llm.server.identity.LLMIdentityProvider"]
    if args.token is not None:
        argv.append(f"--IdentityProvider.token={args.token}")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--ServerApp.allow_root=True")
    argv += [f"--{item}" for item in args.config]
    return argv


def run(args: argparse.Namespace) -> int:
    """Start the server and block until it is interrupted."""
    from ..config import Settings
    from ..errors import JupyterLLMError
    from ..server.app import JupyterLLM

    Settings.from_env()  # a bad JUPYTER_LLM_* value: one clear line instead of a hollow server
    serverapp = JupyterLLM.initialize_server(argv=server_argv(args))
    extension = serverapp.extension_manager.extension_apps.get("jupyter_llm", set())
    app = next(iter(extension), None)
    if app is None or not hasattr(app, "llm_settings"):
        raise JupyterLLMError("The jupyter_llm extension failed to load (the warning above says "
                              "why); fix the setting it names and run `jupyter llm serve` again.")
    url = app.server_url() if app is not None else serverapp.connection_url
    token = serverapp.identity_provider.token
    print(f"jupyter-llm serving at {url} with token {token}", flush=True)
    print(f"  OpenAI-compatible API: {url}llm/v1  (api_key = the token)", flush=True)
    print(f"  kernels elsewhere:     export JUPYTER_LLM_URL={url} JUPYTER_LLM_TOKEN={token}",
          file=sys.stdout, flush=True)
    serverapp.start()
    return 0
