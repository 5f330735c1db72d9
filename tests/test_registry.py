"""Registries load from files and folders, report malformed entries, and select by capability."""

import json
import os

import pytest

from jupyter_llm import paths
from jupyter_llm.errors import ModelNotReady, RegistryError, UnknownModel
from jupyter_llm.registry import ModelSpec, Registry, parse_model_query


def write(path, models):
    path.write_text(json.dumps({"models": models}))
    return path


def entry(id, tags=("CONVERSATIONAL",), **kw):
    return {"id": id, "name": id, "backend": kw.pop("backend", "llama_cpp"), "tags": list(tags),
            "url": kw.pop("url", f"https://example.org/{id}.gguf"), "sha256": None,
            "size_bytes": 1000, "context_length": 2048, "license": "MIT",
            "description": "", **kw}


def test_malformed_file_is_named_and_others_still_load(tmp_path, caplog):
    good = write(tmp_path / "good.json", [entry("a"), entry("b")])
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"models": [ {"id": "x",, } ]}')
    bad_entry = write(tmp_path / "bad_entry.json", [entry("c"), {"id": "d", "tags": []}])
    registry = Registry.load([good, bad_json, bad_entry])
    assert sorted(registry.models) == ["a", "b", "c"]
    problems = [str(p) for p in registry.problems]
    assert any("bad.json" in p and "malformed JSON at line 1" in p for p in problems)
    assert any("bad_entry.json (entry d)" in p and "backend" in p for p in problems)
    warned = [r.getMessage() for r in caplog.records if "Registry problem" in r.getMessage()]
    assert len(warned) == 2 and all("fix or remove it" in w for w in warned)


def test_wrong_top_level_shape_is_reported(tmp_path):
    f = tmp_path / "list.json"
    f.write_text("[1, 2]")
    registry = Registry.load([f])
    assert len(registry) == 0 and '{"models": [ ... ]}' in str(registry.problems[0])


def test_user_registries_come_from_data_dir_and_env_path(tmp_path, monkeypatch):
    paths.registries_dir().mkdir(parents=True)
    write(paths.registries_dir() / "mine.json", [entry("mine-1")])
    folder = tmp_path / "folder"
    folder.mkdir()
    write(folder / "x.json", [entry("env-folder")])
    single = write(tmp_path / "single.json", [entry("env-file")])
    monkeypatch.setenv("JUPYTER_LLM_REGISTRY_PATH", os.pathsep.join([str(folder), str(single)]))
    registry = Registry.load()
    assert {"mine-1", "env-folder", "env-file"} <= set(registry.models)
    assert len(registry) > 10  # the built-in registry is there too
    assert not registry.problems


def test_later_registry_overrides_and_drops_old_aliases(tmp_path):
    first = write(tmp_path / "1.json", [entry("m", aliases=["old"])])
    second = write(tmp_path / "2.json", [entry("m", aliases=["new"], description="second")])
    registry = Registry.load([first, second])
    assert registry.get("new").description == "second"
    with pytest.raises(UnknownModel):
        registry.get("old")


def test_unknown_tags_are_reported_but_the_entry_loads(tmp_path):
    registry = Registry.load([write(tmp_path / "t.json", [entry("m", tags=["CONVERSATONAL"])])])
    assert "m" in registry and "unknown tags" in str(registry.problems[0])


def test_lookup_by_alias_and_case_and_suggestions(tmp_path):
    registry = Registry.load([write(tmp_path / "r.json", [entry("Qwen-X", aliases=["qx"])])])
    assert registry.get("qx").id == "Qwen-X"
    assert registry.get("qwen-x").id == "Qwen-X"
    with pytest.raises(UnknownModel, match="Did you mean 'Qwen-X'"):
        registry.get("Qwen-Y")


def test_hf_endpoint_rewrites_download_urls(monkeypatch):
    spec = ModelSpec(id="m", backend="llama_cpp", url="https://huggingface.co/o/r/resolve/main/f.gguf")
    assert spec.download_url() == spec.url
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:8000/")
    assert spec.download_url() == "http://127.0.0.1:8000/o/r/resolve/main/f.gguf"
    assert spec.file_name == "f.gguf"


def test_tag_queries_parse():
    assert parse_model_query("tags:conversational, 2024_MED") == (None, ["CONVERSATIONAL", "2024_MED"])
    assert parse_model_query("qwen") == ("qwen", [])


@pytest.fixture
def selection(tmp_path):
    return Registry.load([write(tmp_path / "s.json", [
        entry("small", tags=["CONVERSATIONAL", "2024_BASIC"]),
        entry("med", tags=["CONVERSATIONAL", "2024_MED"]),
        entry("coder", tags=["CONVERSATIONAL", "CODE", "2024_MED"]),
        entry("remote", tags=["CONVERSATIONAL", "CODE"], backend="openai", url=None,
              api_key_env="TEST_REMOTE_KEY"),
    ])])


def test_fallback_none_needs_the_preferred_model_loaded(selection):
    assert selection.select(preferred="med", fallback_mode="none", loaded=["med"]).id == "med"
    with pytest.raises(ModelNotReady, match="fallback_mode is 'none'"):
        selection.select(preferred="med", fallback_mode="none", installed=["med"], loaded=["small"])


def test_fallback_requirements_uses_any_loaded_model_with_the_tags(selection):
    got = selection.select(preferred="small", tags=["CODE"], fallback_mode="requirements",
                           loaded=["coder"])
    assert got.id == "coder"
    with pytest.raises(ModelNotReady, match="No loaded model"):
        selection.select(tags=["CODE"], fallback_mode="requirements", installed=["coder"])


def test_fallback_requirements_load_also_takes_installed_models(selection):
    got = selection.select(tags=["2024_MED"], fallback_mode="requirements_load", installed=["med"])
    assert got.id == "med"


def test_fallback_load_prefers_the_installed_preferred_model(selection):
    got = selection.select(preferred="small", tags=["CODE"], fallback_mode="load",
                           installed=["small", "coder"], loaded=["coder"])
    assert got.id == "small"


def test_remote_models_count_only_with_their_key(selection, monkeypatch):
    with pytest.raises(ModelNotReady):
        selection.select(tags=["CODE"], fallback_mode="requirements")
    monkeypatch.setenv("TEST_REMOTE_KEY", "sk-test")
    assert selection.select(tags=["CODE"], fallback_mode="requirements").id == "remote"
    # a local model that is loaded still wins over the remote one
    assert selection.select(tags=["CODE"], fallback_mode="requirements", loaded=["coder"]).id == "coder"


def test_unknown_fallback_mode_lists_the_allowed_ones(selection):
    with pytest.raises(RegistryError, match="requirements_load"):
        selection.select(tags=["CODE"], fallback_mode="sometimes")
