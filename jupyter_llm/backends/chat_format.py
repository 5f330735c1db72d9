"""Which chat format a GGUF model gets, and why: its own template, the registry's, a
llama.cpp built-in chosen by architecture, or none (then every face says so).

The order is (1) the file's ``tokenizer.chat_template``, (2) the registry entry's
``chat_template`` (Jinja source, or the name of a llama.cpp built-in such as ``gemma``),
(3) a llama.cpp built-in template chosen from ``general.architecture``. A built-in
*applies* only when both hold:

- every marker it writes (``<start_of_turn>``, ``<|eot_id|>``, …) is one token of the
  model's vocabulary, so the tokenizer was made for that format; and
- the file says it was tuned to chat: ``general.finetune``, ``general.name`` or the file
  name contains a word such as instruct, chat or ``-it``. Conversion tools copy an instruct
  model's template into the file, so a file with neither is almost always a base model.
  (Gemma 3 270M base has Gemma's turn markers in its vocabulary, but with the ``gemma``
  template it repeats the question until max_tokens: a vocabulary is not a fine-tune.)

Otherwise no template applies: the prompt becomes a plain transcript
(``User: ... Assistant:``) and a warning suggests raw completion.

This module only decides and words; ``LlamaCppModel`` renders (it needs llama.cpp).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["ChatTemplate", "BUILTIN_TEMPLATES", "ARCH_TEMPLATES", "choose_template",
           "plain_transcript", "says_chat_tuned"]

_CHAT_WORDS = re.compile(r"(instruct|chat|assistant|sft|dpo|rlhf|(^|[^a-z])it($|[^a-z]))", re.I)

# llama.cpp built-in name -> (markers that must be single tokens, stop strings)
BUILTIN_TEMPLATES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "chatml": (("<|im_start|>", "<|im_end|>"), ("<|im_end|>",)),
    "gemma": (("<start_of_turn>", "<end_of_turn>"), ("<end_of_turn>",)),
    "llama3": (("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"), ("<|eot_id|>",)),
    "llama4": (("<|header_start|>", "<|header_end|>", "<|eot|>"), ("<|eot|>",)),
    "phi3": (("<|user|>", "<|assistant|>", "<|end|>"), ("<|end|>",)),
    "phi4": (("<|im_start|>", "<|im_sep|>", "<|im_end|>"), ("<|im_end|>",)),
    "mistral-v7": (("[INST]", "[/INST]", "[SYSTEM_PROMPT]"), ()),
    "mistral-v3": (("[INST]", "[/INST]"), ()),
    "command-r": (("<|START_OF_TURN_TOKEN|>", "<|END_OF_TURN_TOKEN|>"), ("<|END_OF_TURN_TOKEN|>",)),
    "granite": (("<|start_of_role|>", "<|end_of_role|>", "<|end_of_text|>"), ("<|end_of_text|>",)),
    "deepseek3": (("<｜User｜>", "<｜Assistant｜>"), ()),
    "exaone3": (("[|system|]", "[|user|]", "[|assistant|]", "[|endofturn|]"), ("[|endofturn|]",)),
    "chatglm4": (("<|user|>", "<|assistant|>"), ()),
}

# general.architecture -> built-in templates to try, in order (the first that applies wins)
ARCH_TEMPLATES: dict[str, tuple[str, ...]] = {
    **{arch: ("gemma",) for arch in ("gemma", "gemma2", "gemma3", "gemma3n", "gemma-embedding")},
    "llama": ("llama3", "mistral-v7", "mistral-v3", "chatml"),
    "llama4": ("llama4",),
    "mistral3": ("mistral-v7", "mistral-v3"),
    "phi3": ("phi3", "phi4", "chatml"),
    **{arch: ("chatml",) for arch in ("qwen", "qwen2", "qwen2moe", "qwen3", "qwen3moe",
                                      "internlm2", "olmo2", "smollm3")},
    "command-r": ("command-r",),
    "cohere2": ("command-r",),
    "granite": ("granite",),
    "granitemoe": ("granite",),
    "deepseek2": ("deepseek3",),
    "exaone": ("exaone3",),
    "chatglm": ("chatglm4",),
}


@dataclass(frozen=True)
class ChatTemplate:
    """The chat format a model runs with: ``source`` is ``gguf``, ``registry``, ``builtin``
    (``name`` says which) or ``none``; ``warning`` is what every face shows, if anything."""

    source: str
    name: str | None = None
    architecture: str | None = None
    warning: str | None = None

    @property
    def applies(self) -> bool:
        """False when no template applies and the prompt is a plain transcript."""
        return self.source != "none"

    def to_dict(self) -> dict[str, Any]:
        """For ``ps``, ``models/{id}`` and the worker's load answer."""
        return asdict(self)


def says_chat_tuned(*names: Any) -> bool:
    """True when a name (``general.finetune``, ``general.name``, the file's) says chat/instruct."""
    return any(isinstance(n, str) and _CHAT_WORDS.search(n) for n in names)


def choose_template(model_id: str, *, gguf_template: str | None, registry_template: str | None,
                    architecture: str | None, chat_tuned: bool,
                    is_single_token: Callable[[str], bool] | None) -> ChatTemplate:
    """Decide the chat format (see the module docstring). ``is_single_token`` checks the
    vocabulary; None (header only, model not loaded) trusts the architecture."""
    if gguf_template:
        return ChatTemplate("gguf", architecture=architecture)
    if registry_template:
        name = registry_template if registry_template in BUILTIN_TEMPLATES else None
        return ChatTemplate("registry", name, architecture)
    for name in ARCH_TEMPLATES.get(architecture or "", ()) if chat_tuned else ():
        markers = BUILTIN_TEMPLATES[name][0]
        if is_single_token is None or all(is_single_token(m) for m in markers):
            return ChatTemplate("builtin", name, architecture, warning=(
                f"{model_id} has no chat template in its file; using llama.cpp's built-in "
                f"{name!r} template, chosen from its architecture ({architecture}). If the "
                "answers ramble or repeat, use raw completion (`--completion`) instead."))
    arch = f" (architecture {architecture})" if architecture else ""
    return ChatTemplate("none", None, architecture, warning=(
        f"{model_id} has no chat template{arch}, neither in its file nor in the registry, and "
        "nothing in the file says it was tuned to chat: it is probably a base model, made to "
        "continue text. The messages were sent as a plain 'User: ... Assistant:' transcript; "
        "for better answers use raw completion (`--completion`), or add a `chat_template` "
        "(Jinja, or a llama.cpp built-in name such as gemma) to its registry entry."))


def plain_transcript(messages: Sequence[dict[str, Any]]) -> tuple[str, list[str]]:
    """The fallback when no template applies: a plain transcript a base model can continue."""
    lines = []
    for msg in messages:
        role = str(msg.get("role") or "user")
        content = str(msg.get("content") or "")
        if role == "system":
            lines.append(content + "\n")
        else:
            lines.append(f"{'Assistant' if role == 'assistant' else 'User'}: {content}")
    return "\n".join(lines) + "\nAssistant:", ["\nUser:"]
