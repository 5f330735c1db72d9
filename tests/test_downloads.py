"""Downloads against a real HTTP server on 127.0.0.1: resume, verification, disk space,
cancellation, shared transfers, progress, URL policy and Hugging Face tokens."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from jupyter_llm.downloads import (
    DownloadManager,
    DownloadProgress,
    hf_auth_headers,
    spec_from_url,
    url_downloads_allowed,
)
from jupyter_llm.errors import (
    Cancelled,
    ChecksumMismatch,
    DownloadError,
    Forbidden,
    InsufficientStorage,
    InvalidRequest,
)
from jupyter_llm.registry import ModelSpec
from jupyter_llm.store import Store

MB = 1 << 20
DATA = os.urandom(3 * MB + 12_345)
SHA = hashlib.sha256(DATA).hexdigest()


def _spec(url: str, *, model_id: str = "test/blob", sha256: str | None = SHA, **kw) -> ModelSpec:
    return ModelSpec(id=model_id, backend="llama_cpp", url=url, sha256=sha256, **kw)


@pytest.fixture
def manager() -> DownloadManager:
    return DownloadManager(chunk_size=256 * 1024)


class Events:
    """A progress callback that records every event."""

    def __init__(self) -> None:
        self.items: list[DownloadProgress] = []

    def __call__(self, p: DownloadProgress) -> None:
        self.items.append(p)

    @property
    def statuses(self) -> list[str]:
        return [e.status for e in self.items]


def test_full_download_installs_the_file_with_a_manifest(http_server, manager):
    http_server.serve("/blob.gguf", DATA)
    spec = _spec(http_server.url("/blob.gguf"))
    events = Events()
    path = manager.download(spec, progress=events)
    assert path == manager.store.path_for(spec)
    assert path.read_bytes() == DATA
    manifest = manager.store.manifest(spec)
    assert manifest["sha256"] == SHA and manifest["sha256_verified"] is True
    assert manifest["size_bytes"] == len(DATA)
    assert manifest["source_url"] == spec.url
    assert not manager.store.partial_dir(spec).exists(), "partial folder tidied up"
    assert manager.active() == []
    # progress: starting ... downloading ... verifying, done; bytes never go back
    assert events.statuses[0] == "starting"
    assert events.statuses[-2:] == ["verifying", "done"]
    assert "downloading" in events.statuses
    done = [e.done_bytes for e in events.items]
    assert done == sorted(done)
    last = events.items[-1]
    assert last.done_bytes == last.total_bytes == len(DATA)
    assert all(e.total_bytes == len(DATA) for e in events.items if e.status == "downloading")
    assert any(e.rate_bytes_per_s > 0 and e.eta_s is not None
               for e in events.items if e.status == "downloading")
    json.dumps(last.to_dict())


def test_progress_is_throttled_to_ten_per_second_plus_changes(http_server):
    http_server.serve("/blob.gguf", DATA)
    manager = DownloadManager(chunk_size=16 * 1024)  # ~200 writes
    events = Events()
    started = time.monotonic()
    manager.download(_spec(http_server.url("/blob.gguf")), progress=events)
    elapsed = time.monotonic() - started
    downloading = [e for e in events.items if e.status == "downloading"]
    assert 1 <= len(downloading) <= 10 * elapsed + 3
    assert downloading[-1].done_bytes == len(DATA)


def test_interrupted_download_resumes_with_a_range_request(http_server, manager):
    http_server.serve("/blob.gguf", DATA, drop_after=1_500_000)
    spec = _spec(http_server.url("/blob.gguf"))
    with pytest.raises(DownloadError) as info:
        manager.download(spec)
    assert spec.url in info.value.message
    assert "run the same command again to resume" in info.value.message
    part = manager.store.part_path(spec)
    kept = part.stat().st_size
    assert 0 < kept <= 1_500_000
    assert part.read_bytes() == DATA[:kept], "the partial file is an exact prefix"
    assert not manager.store.is_installed(spec)

    events = Events()
    path = manager.download(spec, progress=events)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SHA
    second = http_server.requests_for("/blob.gguf")[1]
    assert second.headers["range"] == f"bytes={kept}-"
    assert second.headers["if-range"] == http_server.resources["/blob.gguf"].current_etag()
    first_downloading = next(e for e in events.items if e.status == "downloading")
    assert first_downloading.done_bytes == kept


def test_hash_mismatch_installs_nothing_and_deletes_the_partial(http_server, manager):
    http_server.serve("/blob.gguf", DATA)
    spec = _spec(http_server.url("/blob.gguf"), sha256="ab" * 32)
    events = Events()
    with pytest.raises(ChecksumMismatch) as info:
        manager.download(spec, progress=events)
    msg = info.value.message
    assert "ab" * 32 in msg and SHA in msg and "run the same command again" in msg.lower()
    assert info.value.details["got"] == SHA
    assert not manager.store.is_installed(spec)
    assert not manager.store.path_for(spec).exists()
    assert not manager.store.part_path(spec).exists()
    assert events.statuses[-1] == "error"


def test_missing_registry_hash_installs_and_records_the_computed_hash(http_server, manager,
                                                                      caplog):
    http_server.serve("/blob.gguf", DATA)
    spec = _spec(http_server.url("/blob.gguf"), sha256=None)
    with caplog.at_level("WARNING", logger="jupyter_llm"):
        manager.download(spec)
    manifest = manager.store.manifest(spec)
    assert manifest["sha256"] == SHA and manifest["sha256_verified"] is False
    assert any("no sha256" in r.getMessage() for r in caplog.records)


def test_server_ignoring_range_restarts_from_zero(http_server, manager):
    res = http_server.serve("/blob.gguf", DATA, drop_after=1_000_000, ranges=False)
    spec = _spec(http_server.url("/blob.gguf"))
    with pytest.raises(DownloadError):
        manager.download(spec)
    assert manager.store.partial_bytes(spec) > 0
    path = manager.download(spec)
    assert path.read_bytes() == DATA  # not the old prefix plus the whole file
    second = http_server.requests_for("/blob.gguf")[1]
    assert "range" in second.headers and res.ranges is False


@pytest.mark.parametrize("if_range", [True, False], ids=["server-honours-if-range",
                                                         "server-ignores-if-range"])
def test_changed_remote_file_is_not_appended_to_an_old_partial(http_server, manager, if_range):
    res = http_server.serve("/blob.gguf", DATA, drop_after=1_000_000, if_range=if_range)
    spec = _spec(http_server.url("/blob.gguf"), sha256=None)
    with pytest.raises(DownloadError):
        manager.download(spec)
    new_data = os.urandom(len(DATA))
    res.data = new_data  # same size, new ETag
    path = manager.download(spec)
    assert path.read_bytes() == new_data
    assert manager.store.manifest(spec)["sha256"] == hashlib.sha256(new_data).hexdigest()
    requests = http_server.requests_for("/blob.gguf")
    assert "range" in requests[1].headers
    if if_range:  # the server answered 200 with the whole new file
        assert len(requests) == 2
    else:  # a 206 with a new ETag: the client threw the partial away and asked again
        assert len(requests) == 3 and "range" not in requests[2].headers


def test_changed_size_without_etag_restarts(http_server, manager):
    res = http_server.serve("/blob.gguf", DATA, drop_after=1_000_000, etag="")
    spec = _spec(http_server.url("/blob.gguf"), sha256=None)
    with pytest.raises(DownloadError):
        manager.download(spec)
    res.data = DATA + b"more"
    path = manager.download(spec)
    assert path.read_bytes() == DATA + b"more"
    requests = http_server.requests_for("/blob.gguf")
    assert "range" in requests[1].headers and "range" not in requests[2].headers


def test_disk_space_is_checked_before_any_request(http_server, manager):
    http_server.serve("/blob.gguf", DATA)
    spec = _spec(http_server.url("/blob.gguf"), size_bytes=10**15)
    with pytest.raises(InsufficientStorage) as info:
        manager.download(spec)
    err = info.value
    assert str(manager.store.partial_dir(spec)) in err.message
    assert err.details["needed_bytes"] == 10**15
    assert 0 < err.details["free_bytes"] < 10**15
    assert str(err.details["free_bytes"]) in err.message and "JUPYTER_LLM_HOME" in err.message
    assert http_server.requests_for("/blob.gguf") == []


def test_a_file_where_the_downloads_folder_should_be(http_server, llm_home):
    http_server.serve("/blob.gguf", DATA)
    (Path(llm_home) / "downloads").write_text("oops")
    with pytest.raises(InsufficientStorage) as info:
        DownloadManager().download(_spec(http_server.url("/blob.gguf")))
    assert "downloads" in info.value.message and "writable folder" in info.value.message
    assert http_server.requests_for("/blob.gguf") == []


@pytest.fixture
def tiny_disk(tmp_path, monkeypatch):
    """A 1 MiB tmpfs as the data directory (needs root and mount; skipped otherwise)."""
    mount = tmp_path / "tiny_disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip() or result.returncode}")
    monkeypatch.setenv("JUPYTER_LLM_HOME", str(mount))
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_during_writing_is_insufficient_storage_and_keeps_the_partial(
        http_server, tiny_disk):
    # no Content-Length and no size in the registry: the space check cannot help, ENOSPC hits
    http_server.serve("/blob.gguf", DATA, content_length=False)
    manager = DownloadManager()
    spec = _spec(http_server.url("/blob.gguf"))
    with pytest.raises(InsufficientStorage) as info:
        manager.download(spec)
    assert "disk is full" in info.value.message and str(tiny_disk) in info.value.message
    part = manager.store.part_path(spec).read_bytes()
    assert 0 < len(part) < len(DATA) and part == DATA[:len(part)]


def test_content_length_larger_than_free_space_fails_before_writing(http_server, tiny_disk):
    http_server.serve("/blob.gguf", DATA)
    manager = DownloadManager()
    spec = _spec(http_server.url("/blob.gguf"))
    with pytest.raises(InsufficientStorage) as info:
        manager.download(spec)
    assert info.value.details["needed_bytes"] == len(DATA)
    assert manager.store.partial_bytes(spec) == 0


def test_cancel_keeps_the_partial_and_a_later_download_resumes(http_server, manager):
    http_server.serve("/blob.gguf", DATA, chunk_delay=0.01)
    spec = _spec(http_server.url("/blob.gguf"))
    cancel = threading.Event()
    events = Events()

    def progress(p: DownloadProgress) -> None:
        events(p)
        if p.done_bytes >= MB:
            cancel.set()

    with pytest.raises(Cancelled) as info:
        manager.download(spec, progress=progress, cancel=cancel)
    assert "resumes" in info.value.message
    assert events.statuses[-1] == "cancelled"
    kept = manager.store.partial_bytes(spec)
    assert MB <= kept < len(DATA)
    assert manager.active() == []

    http_server.resources["/blob.gguf"].chunk_delay = 0
    path = manager.download(spec)
    assert path.read_bytes() == DATA
    assert http_server.requests_for("/blob.gguf")[-1].headers["range"] == f"bytes={kept}-"


def test_manager_cancel_by_id_and_active_listing(http_server, manager):
    http_server.serve("/blob.gguf", DATA, chunk_delay=0.02)
    spec = _spec(http_server.url("/blob.gguf"))
    handle = manager.start(spec)
    deadline = time.monotonic() + 10
    while handle.progress.done_bytes == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [p.model_id for p in manager.active()] == [spec.id]
    assert manager.state(spec) == "downloading"
    assert manager.cancel(spec.id) is True
    with pytest.raises(Cancelled):
        handle.wait(10)
    assert manager.cancel(spec.id) is False
    assert manager.state(spec) == "available"


def test_manager_remove_cancels_a_running_download_first(http_server, manager):
    http_server.serve("/blob.gguf", DATA, chunk_delay=0.02)
    spec = _spec(http_server.url("/blob.gguf"))
    handle = manager.start(spec)
    deadline = time.monotonic() + 10
    while handle.progress.done_bytes == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert manager.remove(spec) is True
    assert handle.done and handle.cancelled
    assert not manager.store.partial_dir(spec).exists()
    assert manager.state(spec) == "available"


def test_concurrent_downloads_of_one_model_share_one_transfer(http_server, manager):
    gate = threading.Event()
    http_server.serve("/blob.gguf", DATA, gate=gate)
    spec = _spec(http_server.url("/blob.gguf"))
    results: dict[str, object] = {}
    joined = threading.Event()

    def run(name: str, progress=None) -> None:
        try:
            results[name] = manager.download(spec, progress=progress)
        except Exception as e:  # pragma: no cover - reported by the asserts below
            results[name] = e

    first = threading.Thread(target=run, args=("a",))
    first.start()
    deadline = time.monotonic() + 10
    while not http_server.requests_for("/blob.gguf") and time.monotonic() < deadline:
        time.sleep(0.01)
    second = threading.Thread(target=run, args=("b", lambda p: joined.set()))
    second.start()
    assert joined.wait(10), "the second caller subscribed to the running download"
    gate.set()
    first.join(20)
    second.join(20)
    assert results["a"] == results["b"] == manager.store.path_for(spec)
    assert len(http_server.requests_for("/blob.gguf")) == 1


def test_two_managers_for_one_model_take_turns_on_the_download_lock(http_server):
    pytest.importorskip("fcntl")
    gate = threading.Event()
    http_server.serve("/blob.gguf", DATA, gate=gate)
    spec = _spec(http_server.url("/blob.gguf"))
    one, two = DownloadManager(), DownloadManager()  # as two processes would be
    h1 = one.start(spec)
    deadline = time.monotonic() + 10
    while not http_server.requests_for("/blob.gguf") and time.monotonic() < deadline:
        time.sleep(0.01)
    h2 = two.start(spec)
    while "waiting" not in h2.progress.message and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "another process" in h2.progress.message
    gate.set()
    assert h1.wait(20) == h2.wait(20) == one.store.path_for(spec)
    assert len(http_server.requests_for("/blob.gguf")) == 1


def test_an_installed_model_is_not_downloaded_again(http_server, manager):
    http_server.serve("/blob.gguf", DATA)
    spec = _spec(http_server.url("/blob.gguf"))
    manager.download(spec)
    events = Events()
    assert manager.download(spec, progress=events) == manager.store.path_for(spec)
    assert events.statuses == ["done"]
    assert len(http_server.requests_for("/blob.gguf")) == 1


def test_download_without_content_length(http_server, manager):
    http_server.serve("/blob.gguf", DATA, content_length=False)
    events = Events()
    path = manager.download(_spec(http_server.url("/blob.gguf")), progress=events)
    assert path.read_bytes() == DATA
    assert events.items[-1].total_bytes == len(DATA)


def test_a_failing_progress_callback_does_not_break_the_download(http_server, manager):
    http_server.serve("/blob.gguf", DATA)

    def broken(p: DownloadProgress) -> None:
        raise RuntimeError("consumer bug")

    assert manager.download(_spec(http_server.url("/blob.gguf")), progress=broken).exists()


@pytest.mark.parametrize("status,hint", [(404, "out of date"), (500, "run the same command again"),
                                         (403, "access")])
def test_http_errors_name_the_status_and_url(http_server, manager, status, hint):
    http_server.serve("/blob.gguf", DATA, status=status)
    spec = _spec(http_server.url("/blob.gguf"))
    with pytest.raises(DownloadError) as info:
        manager.download(spec)
    assert f"HTTP {status}" in info.value.message and spec.url in info.value.message
    assert hint in info.value.message.lower()
    assert info.value.details["status"] == status


def test_connection_refused_is_a_download_error(http_server_factory, manager):
    server = http_server_factory()
    url = server.url("/gone.gguf")
    server.close()
    with pytest.raises(DownloadError, match="resume"):
        manager.download(_spec(url))


def test_remote_models_and_models_without_url_cannot_be_downloaded(manager):
    with pytest.raises(InvalidRequest, match="nothing to download"):
        manager.download(ModelSpec(id="gpt", backend="openai", api_model="gpt"))
    with pytest.raises(DownloadError, match="no download url"):
        manager.download(ModelSpec(id="local", backend="llama_cpp"))
    with pytest.raises(InvalidRequest, match="only http"):
        manager.download(_spec("file:///etc/passwd"))


def test_url_downloads_are_refused_unless_enabled(http_server, manager, monkeypatch):
    http_server.serve("/files/My%20Model.Q4.gguf", DATA)
    url = http_server.url("/files/My%20Model.Q4.gguf")
    monkeypatch.delenv("JUPYTER_LLM_ALLOW_URL_DOWNLOADS", raising=False)
    assert url_downloads_allowed() is False
    with pytest.raises(Forbidden) as info:
        manager.download_url(url)
    assert "c.JupyterLLM.allow_url_downloads = True" in info.value.message
    assert "JUPYTER_LLM_ALLOW_URL_DOWNLOADS=1" in info.value.message
    assert http_server.requests == []

    path = manager.download_url(url, allow_url_downloads=True, sha256=SHA)
    assert path.read_bytes() == DATA
    assert spec_from_url(url).id in manager.store.installed_ids()
    monkeypatch.setenv("JUPYTER_LLM_ALLOW_URL_DOWNLOADS", "1")
    assert url_downloads_allowed() is True
    with pytest.raises(InvalidRequest):
        manager.download_url("ftp://example.org/x.gguf")


def test_spec_from_url_makes_a_safe_id_and_file_name():
    spec = spec_from_url("https://example.org/a/My%20Model+v2.gguf?download=1")
    assert spec.id == "url:My-20Model-v2.gguf"
    assert spec.file_name == "My-20Model-v2.gguf"
    assert spec.backend == "llama_cpp" and not spec.is_remote
    with pytest.raises(InvalidRequest, match="id"):
        spec_from_url("https://example.org/x.gguf", model_id="bad id!")
    with pytest.raises(InvalidRequest, match="sha256"):
        spec_from_url("https://example.org/x.gguf", sha256="not-a-hash")


def test_hf_token_goes_only_to_hugging_face_hosts(http_server_factory, manager, monkeypatch):
    hf, other = http_server_factory(), http_server_factory()
    monkeypatch.setenv("HF_TOKEN", "hf_secret_token")
    monkeypatch.setenv("HF_ENDPOINT", hf.base_url)
    hf.serve("/org/repo/resolve/main/a.gguf", DATA)
    hf.serve("/org/repo/resolve/main/b.gguf", redirect=other.url("/cdn/b.gguf"))
    other.serve("/cdn/b.gguf", DATA)
    other.serve("/c.gguf", DATA)

    manager.download(_spec("https://huggingface.co/org/repo/resolve/main/a.gguf", model_id="a"))
    assert hf.requests[0].headers["authorization"] == "Bearer hf_secret_token"
    manager.download(_spec("https://huggingface.co/org/repo/resolve/main/b.gguf", model_id="b"))
    assert hf.requests[1].headers["authorization"] == "Bearer hf_secret_token"
    assert "authorization" not in other.requests_for("/cdn/b.gguf")[0].headers
    manager.download(_spec(other.url("/c.gguf"), model_id="c"))
    assert "authorization" not in other.requests_for("/c.gguf")[0].headers


def test_hf_auth_headers_match_hosts_exactly(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "t")
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    assert hf_auth_headers("https://huggingface.co/x") == {"Authorization": "Bearer t"}
    assert hf_auth_headers("https://cdn-lfs.huggingface.co/x") == {"Authorization": "Bearer t"}
    assert hf_auth_headers("https://hf.co/x") == {"Authorization": "Bearer t"}
    assert hf_auth_headers("https://evilhuggingface.co/x") == {}
    assert hf_auth_headers("https://huggingface.co.evil.org/x") == {}
    assert hf_auth_headers("https://example.org/x") == {}
    monkeypatch.delenv("HF_TOKEN")
    assert hf_auth_headers("https://huggingface.co/x") == {}


def test_hf_token_is_never_logged(http_server, manager, monkeypatch, caplog):
    monkeypatch.setenv("HF_TOKEN", "hf_do_not_log_me")
    monkeypatch.setenv("HF_ENDPOINT", http_server.base_url)
    http_server.serve("/r/resolve/main/x.gguf", DATA, status=401)
    with caplog.at_level("DEBUG"), pytest.raises(DownloadError) as info:
        manager.download(_spec("https://huggingface.co/r/resolve/main/x.gguf", sha256=None))
    assert "HF_TOKEN" in info.value.message and "gated" in info.value.message
    assert "hf_do_not_log_me" not in caplog.text
    assert "hf_do_not_log_me" not in json.dumps(info.value.to_dict())


def test_a_manager_without_a_store_uses_the_data_directory(llm_home):
    manager = DownloadManager()
    assert manager.store.root == Path(llm_home) / "models"
    assert isinstance(manager.store, Store)


def test_download_a_generated_tiny_gguf_and_read_it_back(http_server, manager, tmp_path):
    gguf = pytest.importorskip("gguf")
    from jupyter_llm.testing.tiny_gguf import sha256_file, write_tiny_gguf

    model = write_tiny_gguf(tmp_path / "tiny.gguf", n_embd=128, n_layer=4)
    http_server.serve("/tiny.gguf", file=model, drop_after=model.stat().st_size // 2)
    spec = _spec(http_server.url("/tiny.gguf"), model_id="test/tiny", sha256=sha256_file(model),
                 size_bytes=model.stat().st_size)
    with pytest.raises(DownloadError):
        manager.download(spec)
    path = manager.download(spec)
    reader = gguf.GGUFReader(path)
    assert any(f.startswith("llama.") for f in reader.fields)
