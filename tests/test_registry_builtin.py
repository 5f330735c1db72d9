"""The built-in registry (registry/*.json) is valid, complete and documented."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from jupyter_llm import paths
from jupyter_llm.options import Options
from jupyter_llm.registry import KNOWN_TAGS, ModelSpec, Registry

REGISTRY_DIR = paths.builtin_registry_dir()
DOCS = Path(__file__).resolve().parent.parent / "docs" / "registry.md"
HF_URL = re.compile(r"^https://huggingface\.co/[\w.-]+/[\w.-]+/resolve/main/[\w.-]+\.gguf$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
ERA_TAGS = {"2024_BASIC", "2024_MED", "2024_ADV"}
MB = 10**6


def raw_entries() -> list[tuple[str, dict]]:
    """Every entry of every built-in file, as written, with its file name."""
    out = []
    for file in sorted(REGISTRY_DIR.glob("*.json")):
        doc = json.loads(file.read_text(encoding="utf-8"))
        out += [(file.name, entry) for entry in doc["models"]]
    return out


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load([REGISTRY_DIR])


@pytest.fixture(scope="module")
def local(registry: Registry) -> list[ModelSpec]:
    return [m for m in registry if m.backend == "llama_cpp"]


@pytest.fixture(scope="module")
def remote(registry: Registry) -> list[ModelSpec]:
    return [m for m in registry if m.is_remote]


def test_builtin_registry_loads_without_problems(registry: Registry) -> None:
    assert registry.problems == []
    assert len(registry) == len(raw_entries())
    assert {Path(m.source).name for m in registry} == {"chat.json", "embedding.json", "remote.json"}


def test_has_at_least_ten_gguf_models_with_https_huggingface_urls(local: list[ModelSpec]) -> None:
    assert len(local) >= 10
    for m in local:
        assert m.url and HF_URL.match(m.url), f"{m.id}: {m.url}"
        assert m.file_name.endswith(".gguf")


def test_has_at_least_three_local_embedding_models_with_dimensions(registry: Registry) -> None:
    embedders = [m for m in registry.with_tags(["EMBEDDING"]) if m.backend == "llama_cpp"]
    assert len(embedders) >= 3
    for m in registry.with_tags(["EMBEDDING"]):
        assert m.embedding_dimensions and m.embedding_dimensions >= 64, m.id
    for m in embedders:
        assert getattr(m, "pooling", None) in ("mean", "cls"), m.id


def test_only_embedding_models_declare_embedding_dimensions(registry: Registry) -> None:
    for m in registry:
        assert (m.embedding_dimensions is not None) == m.is_embedding, m.id


def test_every_sha256_is_lowercase_hex_and_every_gguf_has_one(local: list[ModelSpec]) -> None:
    for file, entry in raw_entries():
        if entry.get("sha256") is not None:
            assert HEX64.match(entry["sha256"]), f"{file}: {entry['id']}"
    # The issue allows null for unverifiable hashes; every built-in one was verified.
    assert all(m.sha256 for m in local)
    assert len({m.sha256 for m in local}) == len(local), "two entries point at the same file"


def test_ids_and_aliases_are_unique_across_all_files() -> None:
    names = []
    for _, entry in raw_entries():
        names.append(entry["id"])
        names += entry.get("aliases", [])
    duplicates = [n for n, count in Counter(names).items() if count > 1]
    assert duplicates == []
    lowered = [n.lower() for n in names]
    assert len(set(lowered)) == len(lowered), "names differing only in case are ambiguous"


def test_every_alias_resolves_to_its_entry(registry: Registry) -> None:
    for m in registry:
        assert registry.get(m.id) is m
        for alias in m.aliases:
            assert registry.get(alias) is m


def test_every_tag_is_known_and_written_in_upper_case() -> None:
    for file, entry in raw_entries():
        assert entry["tags"], f"{file}: {entry['id']} has no tags"
        for tag in entry["tags"]:
            assert tag in KNOWN_TAGS, f"{file}: {entry['id']}: {tag}"


def test_chat_models_carry_one_era_tag_and_embedders_none(registry: Registry) -> None:
    for m in registry:
        eras = ERA_TAGS & set(m.tags)
        if m.is_embedding:
            assert not eras, f"{m.id}: an embedder must not answer a request for {eras}"
        else:
            assert "CONVERSATIONAL" in m.tags, m.id
            assert len(eras) == 1, m.id


def test_remote_entries_have_no_url_and_name_a_key_or_server(remote: list[ModelSpec]) -> None:
    assert {"gpt-4o-mini", "gpt-4.1-mini", "text-embedding-3-small"} <= {m.id for m in remote}
    for m in remote:
        assert m.url is None and m.sha256 is None and m.size_bytes is None, m.id
        assert m.api_key_env or m.api_base, m.id
        assert m.api_model, m.id
    openai = [m for m in remote if m.api_base is None]
    assert openai and all(m.api_key_env == "OPENAI_API_KEY" for m in openai)


def test_includes_a_keyless_local_openai_compatible_server_example(remote: list[ModelSpec]) -> None:
    local_servers = [m for m in remote if m.api_base and m.api_base.startswith("http://localhost:")]
    assert [m.api_base for m in local_servers] == ["http://localhost:11434/v1"]
    assert local_servers[0].api_key_env is None


def test_sizes_context_and_memory_are_plausible(local: list[ModelSpec]) -> None:
    for m in local:
        assert m.size_bytes and m.size_bytes > 10 * MB, m.id
        assert m.size_bytes < 20_000 * MB, m.id
        assert m.ram_bytes and m.ram_bytes > m.size_bytes, m.id
        assert m.context_length and m.context_length >= 512, m.id
    for m in local:
        if not m.is_embedding:
            assert m.ram_bytes < 2 * m.size_bytes + 2_000 * MB, m.id


def test_every_entry_is_described_and_licensed(registry: Registry) -> None:
    for m in registry:
        assert m.name and m.description and m.license and m.family, m.id
        assert m.context_length, m.id


def test_default_options_are_valid_generation_options(registry: Registry) -> None:
    for m in registry:
        Options.model_validate(m.default_options)
        if m.backend == "llama_cpp":
            assert m.default_options.get("n_ctx", 0) <= m.context_length, m.id


def test_registry_order_makes_small_local_models_the_defaults(registry: Registry) -> None:
    chat = registry.with_tags(["CONVERSATIONAL"])[0]
    assert chat.backend == "llama_cpp" and 300 * MB < chat.size_bytes < 1_500 * MB
    embedder = registry.with_tags(["EMBEDDING"])[0]
    assert embedder.backend == "llama_cpp" and embedder.size_bytes < 200 * MB
    coder = registry.with_tags(["CODE"])[0]
    assert coder.backend == "llama_cpp" and coder.size_bytes < 1_500 * MB
    basic = registry.with_tags(["CONVERSATIONAL", "2024_BASIC"])
    assert basic and all(m.size_bytes < 1_000 * MB for m in basic)


def test_every_field_used_in_the_files_is_documented() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    used = {key for _, entry in raw_entries() for key in entry}
    schema = set(ModelSpec.model_fields)
    for key in used | schema:
        assert f"`{key}`" in docs, f"field {key!r} is not documented in docs/registry.md"


def test_every_builtin_hash_is_in_the_provenance_table(local: list[ModelSpec]) -> None:
    docs = DOCS.read_text(encoding="utf-8")
    for m in local:
        row = next((line for line in docs.splitlines() if line.startswith(f"| `{m.id}` |")
                    and m.sha256 in line), None)
        assert row, f"{m.id}: no provenance row with its sha256 in docs/registry.md"
        assert str(m.size_bytes) in row, f"{m.id}: provenance row lacks size {m.size_bytes}"
