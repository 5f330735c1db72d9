"""The installed-model store: layout, manifests, atomic installs, removal, states."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from jupyter_llm import paths
from jupyter_llm.confine import unescape_id
from jupyter_llm.errors import ChecksumMismatch, Conflict, InsufficientStorage
from jupyter_llm.registry import ModelSpec
from jupyter_llm.store import Store, safe_id, sha256_file

DATA = os.urandom(300_000)
DATA_SHA = hashlib.sha256(DATA).hexdigest()


def _spec(model_id: str = "org/tiny:q8", **kw) -> ModelSpec:
    kw.setdefault("url", "https://example.org/files/tiny-q8.gguf")
    return ModelSpec(id=model_id, backend="llama_cpp", **kw)


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "generated.gguf"
    path.write_bytes(DATA)
    return path


def test_safe_id_escapes_reversibly_so_ids_never_share_a_folder():
    assert safe_id("org/tiny:q8") == "org_2ftiny_3aq8"
    assert safe_id("plain-id.v1") == "plain-id.v1"
    assert safe_id("ns/slash") != safe_id("ns_slash")
    for model_id in ("ns/slash", "ns_slash", "a:b/c_d", "url:ab12", "ünï/x"):
        assert unescape_id(safe_id(model_id)) == model_id


def test_ids_that_collided_before_keep_separate_files_and_removals(src, tmp_path):
    store = Store()
    a, b = _spec("ns/slash"), _spec("ns_slash")
    other = tmp_path / "other.gguf"
    other.write_bytes(b"other model")
    store.install_file(a, src)
    store.install_file(b, other)
    assert store.manifest(a)["id"] == "ns/slash"
    assert store.manifest(b)["id"] == "ns_slash"
    assert store.remove(b)
    assert store.manifest(a) is not None and store.path_for(a).read_bytes() == DATA
    assert store.installed_ids() == {"ns/slash"}


def test_an_install_in_the_legacy_folder_is_moved_to_the_new_one(src):
    store, spec = Store(), _spec("org/tiny:q8")
    path = store.install_file(spec, src)
    legacy = store.root / "org_tiny_q8"
    path.parent.rename(legacy)  # as an older release laid it out
    assert store.installed_ids() == {"org/tiny:q8"}
    assert store.path_for(spec).read_bytes() == DATA
    assert not legacy.exists()
    # a legacy folder of *another* id (``ns_slash`` holding ``ns/slash``) is never taken
    store.install_file(_spec("ns/slash"), src)
    (store.root / safe_id("ns/slash")).rename(store.root / "ns_slash")
    assert store.manifest(_spec("ns_slash")) is None
    assert (store.root / "ns_slash").is_dir()


@pytest.mark.parametrize("filename", ["../../../escaped.gguf", "/etc/x.gguf", "a/b.gguf", "..",
                                      ".hidden.gguf", "nul\x00.gguf", "back\\slash.gguf"])
def test_a_registry_filename_that_is_a_path_is_refused(filename):
    with pytest.raises(ValidationError, match="not a plain file name"):
        _spec(filename=filename)


def test_a_url_whose_last_part_is_not_a_plain_name_installs_under_the_id(src, llm_home):
    spec = _spec("org/x", url="https://example.org/files/..")
    assert spec.file_name == "org_2fx.gguf"
    assert Store().install_file(spec, src).parent.parent == Path(llm_home) / "models"


def test_a_manifest_whose_file_is_a_path_is_not_installed(src):
    store, spec = Store(), _spec()
    store.install_file(spec, src)
    manifest = json.loads(store.manifest_path(spec).read_text())
    manifest["file"] = "../../outside.gguf"
    store.manifest_path(spec).write_text(json.dumps(manifest))
    assert store.manifest(spec) is None


def test_default_store_lives_in_the_data_directory(llm_home):
    store = Store()
    assert store.root == paths.models_dir() == Path(llm_home) / "models"
    assert store.downloads_root == paths.downloads_dir()
    spec = _spec()
    assert store.path_for(spec) == Path(llm_home) / "models" / "org_2ftiny_3aq8" / "tiny-q8.gguf"
    assert store.part_path(spec) == (Path(llm_home) / "downloads" / "org_2ftiny_3aq8"
                                     / "tiny-q8.gguf.part")


def test_install_file_copies_and_writes_the_manifest(src):
    store, spec = Store(), _spec(sha256=DATA_SHA)
    assert store.state(spec) == "available"
    path = store.install_file(spec, src)
    assert path == store.path_for(spec)
    assert path.read_bytes() == DATA
    assert src.exists(), "install_file copies unless move=True"
    manifest = store.manifest(spec)
    assert manifest is not None
    assert manifest["id"] == spec.id
    assert manifest["file"] == "tiny-q8.gguf"
    assert manifest["sha256"] == DATA_SHA
    assert manifest["sha256_verified"] is True
    assert manifest["size_bytes"] == len(DATA)
    assert manifest["installed_at"].endswith("+00:00")
    assert json.loads((path.parent / "manifest.json").read_text()) == manifest
    assert store.is_installed(spec)
    assert store.state(spec) == "installed"
    assert store.installed_ids() == {"org/tiny:q8"}
    assert [m["id"] for m in store.installed()] == ["org/tiny:q8"]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp-")]


def test_install_without_registry_hash_records_the_computed_hash_unverified(src):
    store, spec = Store(), _spec()
    store.install_file(spec, src, source_url="http://x/y.gguf")
    manifest = store.manifest(spec)
    assert manifest["sha256"] == DATA_SHA == sha256_file(src)
    assert manifest["sha256_verified"] is False
    assert manifest["source_url"] == "http://x/y.gguf"


def test_install_file_with_a_wrong_hash_installs_nothing(src):
    store, spec = Store(), _spec(sha256="0" * 64)
    with pytest.raises(ChecksumMismatch) as info:
        store.install_file(spec, src)
    assert DATA_SHA in info.value.message and "0" * 64 in info.value.message
    assert not store.is_installed(spec)
    assert not store.path_for(spec).exists()


def test_install_file_move_renames_the_source(src):
    store, spec = Store(), _spec()
    store.install_file(spec, src, DATA_SHA, False, move=True)
    assert not src.exists()
    assert store.path_for(spec).read_bytes() == DATA


def test_truncated_or_missing_file_is_not_installed(src):
    store, spec = Store(), _spec()
    path = store.install_file(spec, src)
    with open(path, "r+b") as f:
        f.truncate(1000)
    assert not store.is_installed(spec)
    assert store.installed_ids() == set()
    path.unlink()
    assert store.manifest(spec) is None


def test_reinstall_under_a_new_file_name_drops_the_old_file(src):
    store = Store()
    old = store.install_file(_spec(filename="old.gguf"), src)
    new = store.install_file(_spec(filename="new.gguf"), src)
    assert new.exists() and not old.exists()
    assert store.installed_path(_spec(filename="whatever.gguf")) == new


def test_remote_models_are_always_installed():
    spec = ModelSpec(id="gpt-x", backend="openai", api_model="gpt-x")
    store = Store()
    assert store.is_installed(spec)
    assert store.state(spec) == "installed"
    assert store.installed_ids() == set()


def test_remove_deletes_the_model_and_its_partial_download(src):
    store, spec = Store(), _spec()
    store.install_file(spec, src)
    store.part_path(spec).parent.mkdir(parents=True)
    store.part_path(spec).write_bytes(b"partial")
    assert store.remove(spec.id) is True
    assert not store.dir_for(spec).exists()
    assert not store.partial_dir(spec).exists()
    assert store.remove(spec) is False


def test_remove_refuses_while_a_download_holds_the_lock():
    fcntl = pytest.importorskip("fcntl")
    store, spec = Store(), _spec()
    lock = store.lock_path(spec)
    lock.parent.mkdir(parents=True)
    with open(lock, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        assert store.state(spec) == "downloading"
        with pytest.raises(Conflict, match="being downloaded"):
            store.remove(spec)
    assert store.state(spec) == "available"
    assert store.remove(spec) is True


def test_install_into_a_file_where_the_models_folder_should_be(tmp_path, src):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    store = Store(blocker / "models")
    with pytest.raises(InsufficientStorage) as info:
        store.install_file(_spec(), src)
    assert "not-a-folder" in info.value.message
    assert "writable folder" in info.value.message
    assert info.value.status == 507


def test_install_a_generated_tiny_gguf(tmp_path):
    pytest.importorskip("gguf")
    from jupyter_llm.testing.tiny_gguf import write_tiny_gguf

    model = write_tiny_gguf(tmp_path / "tiny.gguf", seed=3)
    store = Store()
    spec = ModelSpec(id="test/tiny", backend="llama_cpp", filename="tiny.gguf",
                     sha256=sha256_file(model))
    path = store.install_file(spec, model)
    assert path.read_bytes()[:4] == b"GGUF"
    assert store.manifest(spec)["sha256_verified"] is True
