"""File confinement: the one helper, model paths over HTTP, and what a server may read."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from jupyter_llm.config import Settings
from jupyter_llm.confine import confine, is_inside
from jupyter_llm.errors import Forbidden, InvalidRequest, UnknownModel
from jupyter_llm.host import ModelHost
from jupyter_llm.registry import ModelSpec, Registry
from jupyter_llm.testing.tiny_gguf import write_tiny_gguf


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """A root with a file, a link to a secret outside it, and a link that stays inside."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "docs").mkdir(parents=True)
    outside.mkdir()
    (root / "docs" / "a.md").write_text("# A\n\ninside text")
    (outside / "secret.md").write_text("# Secret\n\nthe secret text")
    (root / "docs" / "x.md").symlink_to(outside / "secret.md")
    (root / "docs" / "ok.md").symlink_to(root / "docs" / "a.md")
    (root / "escape").symlink_to(outside, target_is_directory=True)
    return root, outside


def test_confine_accepts_paths_inside_the_root(tree):
    root, _ = tree
    assert confine("docs/a.md", root) == (root / "docs" / "a.md").resolve()
    assert confine(str(root / "docs" / "a.md"), root) == (root / "docs" / "a.md").resolve()
    assert confine("docs/../docs/ok.md", root) == (root / "docs" / "a.md").resolve()
    assert confine(".", root) == root.resolve()


@pytest.mark.parametrize("path", ["../outside/secret.md", "docs/../../outside/secret.md",
                                  "docs/x.md", "escape/secret.md", "escape", "/etc/passwd",
                                  "../ROOT/docs/a.md", "../outside/missing.md", "/nonexistent"])
def test_confine_refuses_every_way_out_with_403(tree, path):
    root, _ = tree
    with pytest.raises(Forbidden) as info:
        confine(path, root)
    assert info.value.status == 403
    assert "secret text" not in info.value.message


def test_confine_refuses_nul_bytes_and_lone_surrogates_with_400(tree):
    root, _ = tree
    for bad in ("docs/a.md\x00.txt", "docs/\udcff.md", ""):
        with pytest.raises(InvalidRequest) as info:
            confine(bad, root)
        assert info.value.status == 400


def test_the_forbidden_message_is_the_same_whether_or_not_the_file_exists(tree):
    root, outside = tree
    messages = set()
    for name in ("secret.md", "missing.md"):
        with pytest.raises(Forbidden) as info:
            confine(str(outside / name), root, shown="X")
        messages.add(info.value.message)
    assert len(messages) == 1


def test_a_symlink_loop_is_refused_not_an_error(tmp_path):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    assert not is_inside(tmp_path / "loop" / "x", tmp_path)
    with pytest.raises(Forbidden):
        confine("loop/x", tmp_path)


# -- model references given as paths -----------------------------------------------------------
def _host(trust_paths: bool, **settings) -> ModelHost:
    registry = Registry()
    registry.add(ModelSpec(id="victim", backend="llama_cpp", url="http://127.0.0.1:9/v.gguf"))
    return ModelHost(Settings(history=False, **settings), registry=registry,
                     trust_paths=trust_paths)


def test_a_server_host_refuses_model_paths_by_default_without_saying_if_they_exist(tmp_path):
    host = _host(trust_paths=False)
    real = write_tiny_gguf(tmp_path / "victim.gguf")
    notgguf = tmp_path / "notes.gguf"
    notgguf.write_text("not a model")
    messages = set()
    for query in (str(real), str(notgguf), str(tmp_path / "missing.gguf"), "victim.gguf"):
        with pytest.raises(Forbidden) as info:
            host.resolve(query)
        messages.add(info.value.message)
    assert len(messages) == 1 and "allow_model_paths" in messages.pop()
    assert host.registry.get("victim").url == "http://127.0.0.1:9/v.gguf"


def test_allowed_folders_load_by_path_and_nothing_outside_them(tmp_path):
    allowed, other = tmp_path / "allowed", tmp_path / "other"
    allowed.mkdir(), other.mkdir()
    inside = write_tiny_gguf(allowed / "mine.gguf")
    outside = write_tiny_gguf(other / "theirs.gguf")
    (allowed / "link.gguf").symlink_to(outside)
    host = _host(trust_paths=False, allow_model_paths=[str(allowed)])
    spec = host.resolve(str(inside))
    assert spec.id == "mine" and spec.model_extra["path"] == str(inside.resolve())
    assert host.resolve("mine.gguf").id == "mine"  # relative to the allowed folder
    for query in (str(outside), str(allowed / "link.gguf"), str(allowed / ".." / "other" / "theirs.gguf")):
        with pytest.raises(Forbidden):
            host.resolve(query)
    with pytest.raises(UnknownModel, match="No GGUF file"):  # inside an allowed folder: may say
        host.resolve(str(allowed / "missing.gguf"))


def test_a_path_never_rebinds_an_existing_id(tmp_path):
    host = _host(trust_paths=True)
    foreign = write_tiny_gguf(tmp_path / "victim.gguf")
    spec = host.resolve(str(foreign))
    assert spec.id != "victim" and spec.id.startswith("victim-")
    assert host.registry.get("victim").url == "http://127.0.0.1:9/v.gguf"
    assert "path" not in (host.registry.get("victim").model_extra or {})
    assert host.resolve(str(foreign)).id == spec.id  # the same file keeps its id
    other = tmp_path / "b" / "victim.gguf"
    other.parent.mkdir()
    write_tiny_gguf(other)
    assert host.resolve(str(other)).id not in ("victim", spec.id)


def test_in_process_hosts_still_load_any_path(tmp_path):
    host = _host(trust_paths=True)
    assert host.resolve(str(write_tiny_gguf(tmp_path / "here.gguf"))).id == "here"


def test_allow_model_paths_reads_the_environment(tmp_path):
    settings = Settings.from_env({"JUPYTER_LLM_ALLOW_MODEL_PATHS": f"{tmp_path}{os.pathsep}/srv/m"})
    assert settings.allow_model_paths == [str(tmp_path), "/srv/m"]


# -- over HTTP --------------------------------------------------------------------------------
async def _post(jp_fetch, *path, body):
    r = await jp_fetch(*path, method="POST", body=json.dumps(body), raise_error=False)
    return r.code, r.body.decode()


async def test_http_requests_cannot_load_a_file_by_path(tiny_registry, jp_fetch, tmp_path):
    real = write_tiny_gguf(tmp_path / "tiny-chat.gguf")
    bodies = []
    for model in (str(real), str(tmp_path / "missing.gguf"), "/etc/passwd.gguf"):
        msgs = [{"role": "user", "content": "hi"}]
        for route in (("llm", "api", "chat"), ("llm", "v1", "chat", "completions")):
            code, text = await _post(jp_fetch, *route, body={"model": model, "messages": msgs})
            assert code == 403, (route, model, text)
            bodies.append(json.loads(text)["error"]["message"])
        code, text = await _post(jp_fetch, "llm", "api", "embed",
                                 body={"model": model, "input": ["x"]})
        assert code == 403, text
        for route, body in ((("llm", "api", "pull"), {"model": model, "stream": False}),
                            (("llm", "api", "load"), {"model": model})):
            code, text = await _post(jp_fetch, *route, body=body)
            assert code == 403, (route, model, text)
            bodies.append(json.loads(text)["error"]["message"])
    assert len(set(bodies)) == 1, "the answer must not reveal whether the path exists"
    code, text = await _post(jp_fetch, "llm", "api", "chat", body={
        "model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}],
        "options": {"max_tokens": 2}})
    assert code == 200 and "tiny-chat" in text


@pytest.fixture
def jp_server_config(tmp_path):
    """The extension with one folder allowed for model paths."""
    (tmp_path / "allowed").mkdir()
    return {"ServerApp": {"jpserver_extensions": {"jupyter_llm": True}},
            "JupyterLLM": {"allow_model_paths": [str(tmp_path / "allowed")]}}


async def test_an_operator_can_allow_a_folder(tiny_registry, jp_fetch, tmp_path):
    mine = write_tiny_gguf(tmp_path / "allowed" / "mine.gguf")
    code, text = await _post(jp_fetch, "llm", "api", "chat", body={
        "model": str(mine), "messages": [{"role": "user", "content": "hi"}],
        "options": {"max_tokens": 2}})
    assert code == 200, text
    code, text = await _post(jp_fetch, "llm", "api", "chat", body={
        "model": str(write_tiny_gguf(tmp_path / "elsewhere.gguf")),
        "messages": [{"role": "user", "content": "hi"}]})
    assert code == 403, text
