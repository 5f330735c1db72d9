"""The package version, single-sourced from ``labextension/package.json`` at build time.

Read from the installed distribution's ``*.dist-info`` folder name (cheap: no
``importlib.metadata`` import, which costs ~40 ms), falling back to the source checkout's
``labextension/package.json``, then to ``0+unknown``.
"""

from __future__ import annotations

import os
import sys

__all__ = ["__version__"]

_DIST = "jupyter_llm-"


def _from_dist_info() -> str | None:
    """The version in the name of ``jupyter_llm-<version>.dist-info`` on ``sys.path``, if any."""
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.startswith(_DIST) and name.endswith(".dist-info"):
                return name[len(_DIST):-len(".dist-info")]
    return None


def _from_package_json() -> str | None:
    """The version in the source checkout's ``labextension/package.json``, if present."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "labextension", "package.json")
    try:
        with open(path, encoding="utf-8") as f:
            import json

            return str(json.load(f)["version"])
    except (OSError, ValueError, KeyError):
        return None


__version__: str = _from_dist_info() or _from_package_json() or "0+unknown"
