"""The prompt library: reusable YAML prompts (built in, per user, per notebook folder).

    from jupyter_llm.prompts import PromptLibrary
    library = PromptLibrary.load()                  # builtin < data_dir/prompts < ./prompts
    system, user = library.get("socratic-tutor").render("Why does my loop never end?")
"""

from __future__ import annotations

from .library import PromptLibrary, PromptProblem, builtin_dir, load_prompt_file, prompt_dirs
from .template import INPUT, PromptTemplate, PromptVariable, placeholders

__all__ = ["INPUT", "PromptLibrary", "PromptProblem", "PromptTemplate", "PromptVariable",
           "builtin_dir", "load_prompt_file", "placeholders", "prompt_dirs"]
