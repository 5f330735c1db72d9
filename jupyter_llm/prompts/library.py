"""The prompt library: YAML prompt files built into the package, in the user's data
directory (``paths.data_dir() / "prompts"``) and in a ``prompts/`` folder next to the
notebook. A later place overrides an earlier one with the same name (notebook > user >
built-in). A malformed file is reported as a problem naming the file and the field, and
every other prompt still loads."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .. import errors, paths
from ..errors import NotFound, RegistryError
from .template import PromptTemplate

__all__ = ["PromptLibrary", "PromptProblem", "builtin_dir", "load_prompt_file", "prompt_dirs"]

SUFFIXES = (".yaml", ".yml")


def builtin_dir() -> Path:
    """The folder of the prompts shipped with the package."""
    return Path(__file__).parent / "builtin"


def prompt_dirs(notebook_dir: str | Path | None = None) -> list[tuple[str, Path]]:
    """``(origin, folder)`` pairs in increasing priority: builtin, user, notebook."""
    here = Path.cwd() if notebook_dir is None else Path(notebook_dir)
    return [("builtin", builtin_dir()), ("user", paths.data_dir() / "prompts"),
            ("notebook", here / "prompts")]


@dataclass
class PromptProblem:
    """A prompt file that could not be used: the file, the field and what is wrong."""

    path: str
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.path + (f", field {self.field!r}" if self.field else "")
        return f"{where}: {self.message}"

    def error(self) -> RegistryError:
        """This problem as the error to raise."""
        return RegistryError(f"Prompt file {self}. Fix the file, then run it again.",
                             details={"path": self.path, "field": self.field})


def _problems_from_pydantic(path: Path, exc: ValidationError, prefix: str = "") -> list[PromptProblem]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        field = (prefix + loc) if loc else (prefix.rstrip(".") or None)
        msg = err.get("msg", "is invalid")
        if err.get("type") == "extra_forbidden":
            msg = "is not a known field (known: " + ", ".join(
                k for k in PromptTemplate.model_fields if k not in ("origin", "source")) + ")"
        out.append(PromptProblem(str(path), field, msg.removeprefix("Value error, ")))
    return out


def _read_file(path: Path, origin: str) -> tuple[list[PromptTemplate], list[PromptProblem]]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        return [], [PromptProblem(str(path), None, f"cannot be read: {e}")]
    except yaml.YAMLError as e:
        return [], [PromptProblem(str(path), None, f"is not valid YAML: {e}")]
    if isinstance(data, dict) and isinstance(data.get("prompts"), list):
        entries, prefix = data["prompts"], "prompts.{i}."
    elif isinstance(data, dict):
        entries, prefix = [data], ""
    else:
        return [], [PromptProblem(str(path), None,
                                  "must be a mapping with name and template (or a prompts: list)")]
    templates: list[PromptTemplate] = []
    problems: list[PromptProblem] = []
    for i, entry in enumerate(entries):
        where = prefix.format(i=i)
        if not isinstance(entry, dict):
            problems.append(PromptProblem(str(path), where.rstrip(".") or None, "must be a mapping"))
            continue
        entry = {k: v for k, v in entry.items() if k not in ("origin", "source")}
        entry.setdefault("name", path.stem)
        try:
            templates.append(PromptTemplate.model_validate(
                {**entry, "origin": origin, "source": str(path)}))
        except ValidationError as e:
            problems.extend(_problems_from_pydantic(path, e, where))
    return templates, problems


def load_prompt_file(path: str | Path, origin: str = "user") -> list[PromptTemplate]:
    """Read one YAML prompt file; raise ``RegistryError`` naming the file and field if it is bad."""
    templates, problems = _read_file(Path(path), origin)
    if problems:
        raise problems[0].error()
    return templates


class PromptLibrary:
    """Every prompt by name, with the problems of the files that could not be used."""

    def __init__(self, templates: dict[str, PromptTemplate] | None = None,
                 problems: list[PromptProblem] | None = None) -> None:
        self.templates: dict[str, PromptTemplate] = dict(templates or {})
        self.problems: list[PromptProblem] = list(problems or [])

    @classmethod
    def load(cls, notebook_dir: str | Path | None = None) -> PromptLibrary:
        """Load the built-in, user and notebook prompts (later places win)."""
        library = cls()
        for origin, folder in prompt_dirs(notebook_dir):
            if not folder.is_dir():
                continue
            for path in sorted(p for p in folder.iterdir() if p.suffix in SUFFIXES):
                templates, problems = _read_file(path, origin)
                library.problems.extend(problems)
                for template in templates:
                    library.templates[template.name] = template
        return library

    def get(self, name: str) -> PromptTemplate:
        """The prompt called ``name``; a bad file of that name raises its problem."""
        if name in self.templates:
            return self.templates[name]
        for problem in self.problems:
            if Path(problem.path).stem == name:
                raise problem.error()
        close = difflib.get_close_matches(name, list(self.templates), n=3, cutoff=0.5)
        guess = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise NotFound(f"Unknown prompt {name!r}.{guess} List the prompts to choose one.",
                       details={"prompt": name, "suggestions": close,
                                **errors.hint("list_templates")})

    def __contains__(self, name: object) -> bool:
        return name in self.templates

    def __iter__(self) -> Iterator[PromptTemplate]:
        return iter(sorted(self.templates.values(), key=lambda t: t.name))

    def __len__(self) -> int:
        return len(self.templates)

    def summaries(self) -> list[dict[str, Any]]:
        """Every prompt's summary, sorted by name."""
        return [t.summary() for t in self]
