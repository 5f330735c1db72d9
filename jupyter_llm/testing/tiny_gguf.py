"""The one generator of tiny llama-architecture GGUF files for tests, benchmarks and notebooks.

``write_tiny_gguf`` writes a random-weight llama model that real llama.cpp loads in
milliseconds: a byte-level BPE vocabulary (``gpt2``: all 256 byte symbols, 114
merges and the specials ``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>``), an
embedded ChatML ``tokenizer.chat_template`` and MEAN pooling, so ``embed()`` returns
one vector of length ``n_embd`` per input.

Generation is made useful for tests: channel 0 of the residual stream is a constant
"bias" channel (no layer writes to it), and the output rows of the special tokens and
of every token that is not printable ASCII carry a large negative weight on it. So at
temperature 0 the model never stops on its own (stop it with ``max_tokens`` or ``stop``;
EOS is practically impossible when sampling too) and the text it writes is printable
ASCII, so always valid UTF-8 (gibberish, but deterministic per seed). Mean-pooled
embeddings are lexical: texts sharing tokens get a high cosine similarity.

Measured sizes (vocabulary of 373 tokens, ``n_ff = 2 * n_embd``, f16 weights):

    n_embd  n_layer  file       note
    64      2        270 KB     the default (150 KB with quantize="q8_0"); writes in ~10 ms
    128     4        1.5 MB
    256     4        5.6 MB
    512     8        43 MB      benchmark size (23 MB with quantize="q8_0"); writes in ~0.4 s
    768     8        96 MB

Each layer holds ``4 * n_embd**2 + 3 * n_embd * n_ff`` weights; ``quantize="q8_0"``
roughly halves the file (n_embd and n_ff must then be multiples of 32).

``write_broken_gguf`` writes the bad inputs; see ``BROKEN_KINDS`` for what each does.
Command line::

    python -m jupyter_llm.testing.tiny_gguf OUT.gguf [--seed N] [--n-embd N] ...
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
from pathlib import Path
from typing import Any

__all__ = [
    "BROKEN_KINDS",
    "CHATML_TEMPLATE",
    "SPECIAL_TOKENS",
    "sha256_file",
    "tiny_vocab",
    "write_broken_gguf",
    "write_tiny_gguf",
]

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""The ChatML chat template embedded in every tiny model (Jinja2, as in Qwen/OpenHermes)."""

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
"""Control tokens appended after the byte symbols and merges: BOS, chat start, chat end/EOS."""

BROKEN_KINDS: dict[str, str] = {
    "empty": "value_error",
    "truncated": "value_error",
    "garbage": "value_error",
    "wrong_magic": "value_error",
    "block_count_1000": "abort_on_load",
    "nan_eps": "abort_on_decode",
}
"""What each ``write_broken_gguf`` kind does to llama.cpp.

``value_error``: ``llama_cpp.Llama(model_path=...)`` raises ``ValueError`` in Python.
``abort_on_load``: the well-formed file aborts the process (SIGABRT from GGML_ASSERT,
exit code -6) while loading. ``abort_on_decode``: it loads, then aborts the process at
the first decode (a completion or an embedding). Load those only in a child process,
with ``GGML_NO_BACKTRACE=1``.
"""

# Text pieces merged into single tokens, in merge order (shortest first, so every
# merge joins two tokens that already exist). "_" stands for a leading space ("Ġ").
_MERGE_WORDS = [
    word.replace("_", " ")
    for word in (
        "th he in er an re on at en nd ti es or te of ed is it al ar st to nt ng se ha as"
        " ou io le ve co me de hi ri ro ic ne ea ra ce ll _t _a _s _o _w _c _b _i _f _m _p"
        " _d _h _l _n _r _e _g the _the ing and _and _of _to _in _is _it ion tion _that"
        " _for _with _you _on _model _data _code _python _file _git _shell _hello _world"
        " _llama"
    ).split()
]

_BOS, _CHAT_START, _EOS = SPECIAL_TOKENS
_BANNED_BIAS = -1000.0  # output weight on the constant channel for never-argmax tokens
_QUANT_TYPES = ("f32", "f16", "q8_0")


def _bytes_to_unicode() -> dict[int, str]:
    """Return GPT-2's reversible byte -> printable-character map used by byte-level BPE."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, chars, strict=True)}


def tiny_vocab() -> tuple[list[str], list[str], list[int]]:
    """Return ``(tokens, merges, token_types)`` of the tiny byte-level BPE vocabulary."""
    byte_map = _bytes_to_unicode()
    tokens = [byte_map[b] for b in range(256)]
    index = {t: i for i, t in enumerate(tokens)}
    merges: list[str] = []

    def add(piece: str) -> None:
        if piece in index:
            return
        split = next(
            (i for i in range(len(piece) - 1, 0, -1) if piece[:i] in index and piece[i:] in index),
            None,
        )
        if split is None:  # build the prefix first, then append the last symbol
            add(piece[:-1])
            split = len(piece) - 1
        merges.append(f"{piece[:split]} {piece[split:]}")
        index[piece] = len(tokens)
        tokens.append(piece)

    for word in _MERGE_WORDS:
        add("".join(byte_map[b] for b in word.encode("utf-8")))
    types = [1] * len(tokens) + [3] * len(SPECIAL_TOKENS)  # NORMAL, then CONTROL
    tokens.extend(SPECIAL_TOKENS)
    assert len(set(tokens)) == len(tokens), "token strings must be unique"
    return tokens, merges, types


def _allowed_output(tokens: list[str], types: list[int]) -> list[bool]:
    """Return, per token, whether it may ever be the argmax: printable ASCII text only."""
    decode = {c: b for b, c in _bytes_to_unicode().items()}
    return [
        ttype == 1 and all(0x20 <= decode[c] <= 0x7E for c in tok)
        for tok, ttype in zip(tokens, types, strict=True)
    ]


def _check_args(n_embd: int, n_layer: int, n_head: int, n_ff: int, quant: str) -> None:
    """Raise ValueError naming the bad parameter and a value that works."""
    if n_embd < 8 or n_layer < 1 or n_head < 1 or n_ff < 1:
        raise ValueError(
            f"n_embd={n_embd}, n_layer={n_layer}, n_head={n_head}, n_ff={n_ff}: "
            "need n_embd >= 8 and n_layer, n_head, n_ff >= 1"
        )
    if n_embd % n_head or (n_embd // n_head) % 2:
        raise ValueError(
            f"n_embd={n_embd} must be divisible by n_head={n_head} into an even head size "
            "(for example n_embd=64, n_head=4)"
        )
    if quant not in _QUANT_TYPES:
        raise ValueError(f"quantize={quant!r} is not supported; use None (f16), 'f32' or 'q8_0'")
    if quant == "q8_0" and (n_embd % 32 or n_ff % 32):
        raise ValueError(
            f"quantize='q8_0' needs n_embd and n_ff divisible by 32 (got {n_embd}, {n_ff})"
        )


def write_tiny_gguf(
    path: str | os.PathLike[str],
    *,
    seed: int = 0,
    n_embd: int = 64,
    n_layer: int = 2,
    n_head: int = 4,
    n_ff: int | None = None,
    context_length: int = 2048,
    chat_template: str | None = CHATML_TEMPLATE,
    quantize: str | None = None,
    name: str = "tiny",
) -> Path:
    """Write a deterministic random-weight llama GGUF to ``path`` and return it as a Path."""
    return _write(
        Path(path),
        seed=seed,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        n_ff=n_ff if n_ff is not None else 2 * n_embd,
        context_length=context_length,
        chat_template=chat_template,
        quant=quantize or "f16",
        name=name,
    )


def _write(
    path: Path,
    *,
    seed: int,
    n_embd: int,
    n_layer: int,
    n_head: int,
    n_ff: int,
    context_length: int,
    chat_template: str | None,
    quant: str,
    name: str,
    block_count: int | None = None,
    rms_eps: float = 1e-5,
) -> Path:
    """Build and write the model; ``block_count``/``rms_eps`` overrides make broken files."""
    import gguf
    import numpy as np

    _check_args(n_embd, n_layer, n_head, n_ff, quant)
    tokens, merges, types = tiny_vocab()
    n_vocab = len(tokens)
    rng = np.random.default_rng(seed)

    def normal(shape: tuple[int, ...], fan_in: int, gain: float = 1.0) -> Any:
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(gain / math.sqrt(fan_in))

    # Channel 0 is the constant bias channel: 1.0 in every embedding, never written by a layer.
    token_embd = rng.standard_normal((n_vocab, n_embd), dtype=np.float32)
    token_embd[:, 0] = 1.0
    output = normal((n_vocab, n_embd), n_embd, gain=4.0)
    output[:, 0] = np.where(_allowed_output(tokens, types), 0.0, _BANNED_BIAS)
    tensors: list[tuple[str, Any]] = [("token_embd.weight", token_embd)]
    for i in range(n_layer):
        attn_output = normal((n_embd, n_embd), n_embd)
        ffn_down = normal((n_embd, n_ff), n_ff)
        attn_output[0] = 0.0
        ffn_down[0] = 0.0
        tensors += [
            (f"blk.{i}.attn_norm.weight", np.ones(n_embd, dtype=np.float32)),
            (f"blk.{i}.attn_q.weight", normal((n_embd, n_embd), n_embd, gain=2.0)),
            (f"blk.{i}.attn_k.weight", normal((n_embd, n_embd), n_embd, gain=2.0)),
            (f"blk.{i}.attn_v.weight", normal((n_embd, n_embd), n_embd)),
            (f"blk.{i}.attn_output.weight", attn_output),
            (f"blk.{i}.ffn_norm.weight", np.ones(n_embd, dtype=np.float32)),
            (f"blk.{i}.ffn_gate.weight", normal((n_ff, n_embd), n_embd)),
            (f"blk.{i}.ffn_up.weight", normal((n_ff, n_embd), n_embd)),
            (f"blk.{i}.ffn_down.weight", ffn_down),
        ]
    tensors += [
        ("output_norm.weight", np.ones(n_embd, dtype=np.float32)),
        ("output.weight", output),
    ]

    file_type = {
        "f32": gguf.LlamaFileType.ALL_F32,
        "f16": gguf.LlamaFileType.MOSTLY_F16,
        "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
    }[quant]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    writer = gguf.GGUFWriter(tmp, "llama")
    try:
        writer.add_name(name)
        writer.add_file_type(int(file_type))
        if quant == "q8_0":
            writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        writer.add_context_length(context_length)
        writer.add_embedding_length(n_embd)
        writer.add_block_count(n_layer if block_count is None else block_count)
        writer.add_feed_forward_length(n_ff)
        writer.add_head_count(n_head)
        writer.add_head_count_kv(n_head)
        writer.add_rope_dimension_count(n_embd // n_head)
        writer.add_rope_freq_base(10000.0)
        writer.add_layer_norm_rms_eps(rms_eps)
        writer.add_vocab_size(n_vocab)
        writer.add_pooling_type(gguf.PoolingType.MEAN)
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre("default")
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        writer.add_token_merges(merges)
        writer.add_bos_token_id(tokens.index(_BOS))
        writer.add_eos_token_id(tokens.index(_EOS))
        writer.add_eot_token_id(tokens.index(_EOS))
        writer.add_pad_token_id(tokens.index(_BOS))
        writer.add_add_bos_token(True)
        writer.add_add_eos_token(False)
        if chat_template is not None:
            writer.add_chat_template(chat_template)
        for tensor_name, data in tensors:
            if data.ndim == 1 or quant == "f32":
                writer.add_tensor(tensor_name, data)
            elif quant == "f16":
                writer.add_tensor(tensor_name, data.astype(np.float16))
            else:
                qtype = gguf.GGMLQuantizationType.Q8_0
                writer.add_tensor(tensor_name, gguf.quantize(data, qtype), raw_dtype=qtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    os.replace(tmp, path)
    return path


def write_broken_gguf(path: str | os.PathLike[str], kind: str) -> Path:
    """Write a bad model file of ``kind`` (a key of ``BROKEN_KINDS``) and return its Path."""
    path = Path(path)
    if kind not in BROKEN_KINDS:
        raise ValueError(f"unknown broken GGUF kind {kind!r}; choose one of {sorted(BROKEN_KINDS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    base: dict[str, Any] = dict(
        seed=0, n_embd=64, n_layer=2, n_head=4, n_ff=128, context_length=2048,
        chat_template=CHATML_TEMPLATE, quant="f16", name=f"broken-{kind}",
    )  # fmt: skip
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        import numpy as np

        data = np.random.default_rng(1234).integers(0, 256, 64 * 1024, dtype=np.uint8).tobytes()
        path.write_bytes(b"\x00JNK" + data[4:])  # never starts with the GGUF magic
    elif kind in ("truncated", "wrong_magic"):
        _write(path, **base)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2] if kind == "truncated" else b"GGUX" + data[4:])
    elif kind == "block_count_1000":
        _write(path, **base, block_count=1000)
    else:  # nan_eps
        _write(path, **base, rms_eps=float("nan"))
    return path


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Return the hex sha256 of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    """Command line: write a tiny GGUF and print its path, size and sha256."""
    parser = argparse.ArgumentParser(
        prog="python -m jupyter_llm.testing.tiny_gguf",
        description="Write a tiny random-weight llama GGUF (ChatML template, MEAN pooling).",
    )
    parser.add_argument("out", type=Path, help="output .gguf path")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-embd", type=int, default=64)
    parser.add_argument("--n-layer", type=int, default=2)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--n-ff", type=int, default=None, help="default: 2 * n_embd")
    parser.add_argument("--context-length", type=int, default=2048)
    parser.add_argument("--quantize", choices=_QUANT_TYPES, default=None, help="default: f16")
    parser.add_argument("--name", default="tiny")
    args = parser.parse_args(argv)
    try:
        path = write_tiny_gguf(
            args.out,
            seed=args.seed,
            n_embd=args.n_embd,
            n_layer=args.n_layer,
            n_head=args.n_head,
            n_ff=args.n_ff,
            context_length=args.context_length,
            quantize=args.quantize,
            name=args.name,
        )
    except ValueError as e:
        parser.error(str(e))
    print(f"path:   {path}")
    print(f"size:   {path.stat().st_size} bytes")
    print(f"sha256: {sha256_file(path)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
