"""The collections API ``llm/api/collections…`` against a real Jupyter server, the real
all-MiniLM-L6-v2 embedder, real SQLite vector indexes and the tiny GGUF chat model."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import httpx
import pytest

from jupyter_llm.client.local import LocalClient
from jupyter_llm.client.remote import RemoteClient
from jupyter_llm.errors import Forbidden

from .test_server_native import assert_error, call

SHELL = """# Navigating Files and Directories

## Listing files

The `ls` command lists the files and folders in the current directory.
Use `ls -F` to mark folders with a trailing slash, and `ls -l` for a long listing
with sizes and dates. Hidden files, whose names start with a dot, appear with `ls -a`.

## Changing directory

`cd` changes the working directory. `cd ..` moves up one level and `pwd` prints
where you are now.
"""

GIT = """# Version Control with Git

## Recording changes

`git add` puts a file in the staging area and `git commit -m "message"` records a
snapshot of the staged changes in the repository history.

## Undoing a commit

`git revert HEAD` creates a new commit that undoes the last one, and `git checkout`
restores an older version of a file.
"""

PYTHON = """# Repeating Actions with Loops

A `for` loop runs its body once for each item of a collection:

```python
for word in ["lead", "tin", "zinc"]:
    print(word)
```

The loop variable takes each value in turn; `len` counts the items of a list.
"""

IN_SCOPE = "How do I list the files in a directory?"
OFF_TOPIC = "What is a good recipe for chocolate cake with strawberries?"


@pytest.fixture
def course_dir(jp_root_dir: Path) -> Path:
    """Three small lessons and one corrupt PDF under the server's root_dir."""
    course = jp_root_dir / "course"
    course.mkdir()
    (course / "shell.md").write_text(SHELL)
    (course / "git.md").write_text(GIT)
    (course / "python.md").write_text(PYTHON)
    (course / "broken.pdf").write_bytes(b"%PDF-1.4\nnot really a pdf\n")
    return course


async def create_and_ingest(jp_fetch, name="course", **create):
    status, body, _ = await call(jp_fetch, "llm", "api", "collections",
                                 body={"name": name, **create})
    assert status == 201, body
    status, lines, r = await call(jp_fetch, "llm", "api", "collections", name, "ingest",
                                  body={"paths": ["course"]})
    assert status == 200 and r.headers["Content-Type"].startswith("application/x-ndjson")
    return body, lines


async def test_create_ingest_search_ask_delete(minilm, tiny_registry, jp_fetch, course_dir):
    created, lines = await create_and_ingest(jp_fetch)
    assert created["name"] == "course" and created["documents"] == 0
    assert created["embedding_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert created["vector_backend"] == "vec"

    *progress, summary = lines
    assert [p["done"] for p in progress] == list(range(1, 5))  # one line per file, to the end
    assert {p["total"] for p in progress} == {4}
    assert summary["done"] is True and summary["status"] == "done"
    assert sorted(summary["added"]) == ["course/git.md", "course/python.md", "course/shell.md"]
    assert [f["path"] for f in summary["failed"]] == ["course/broken.pdf"]
    assert summary["failed"][0]["error"]  # the reason is given
    assert summary["documents"] == 3 and summary["chunks"] == summary["total_chunks"] > 3

    # idempotent: nothing changed, nothing re-embedded
    status, lines, _ = await call(jp_fetch, "llm", "api", "collections", "course", "ingest",
                                  body={"paths": ["course"], "include": ["*.md"]})
    assert status == 200 and len(lines[-1]["unchanged"]) == 3 and lines[-1]["chunks"] == 0

    # creating it again returns the existing one
    status, again, _ = await call(jp_fetch, "llm", "api", "collections", body={"name": "course"})
    assert status == 200 and again["documents"] == 3
    status, listed, _ = await call(jp_fetch, "llm", "api", "collections")
    assert [c["name"] for c in listed["collections"]] == ["course"]
    status, docs, _ = await call(jp_fetch, "llm", "api", "collections", "course", "documents")
    assert status == 200
    assert [d["source"] for d in docs["documents"]] == ["course/git.md", "course/python.md",
                                                       "course/shell.md"]
    assert Path(docs["documents"][2]["path"]) == course_dir / "shell.md"
    assert all(d["n_chunks"] >= 1 and d["ingested_at"] for d in docs["documents"])

    status, found, _ = await call(jp_fetch, "llm", "api", "collections", "course", "search",
                                  body={"query": IN_SCOPE, "k": 3})
    assert status == 200 and found["supported"] is True
    top = found["results"][0]
    assert top["source"] == "course/shell.md" and "ls" in top["text"]
    assert top["path"] == "course/shell.md" and top["start_line"] >= 1  # no server path
    assert len(found["results"]) == 3
    status, off, _ = await call(jp_fetch, "llm", "api", "collections", "course", "search",
                                body={"query": OFF_TOPIC, "mode": "dense"})
    assert status == 200 and off["supported"] is False

    status, lines, _ = await call(jp_fetch, "llm", "api", "collections", "course", "ask", body={
        "question": IN_SCOPE, "model": "tiny-chat", "k": 2,
        "options": {"max_tokens": 8, "temperature": 0}})
    assert status == 200 and lines[0].get("delta") is not None
    final = lines[-1]
    assert final["done"] is True and final["supported"] is True
    assert final["model"] == "tiny-chat" and not final["retrieval_only"]
    assert final["usage"]["completion_tokens"] >= 1
    assert len(final["citations"]) == 2
    assert final["citations"][0]["source"] == final["citations"][0]["path"] == "course/shell.md"
    assert all("delta" in line for line in lines[:-1])
    # the tiny model's random tokens cite nothing: quoted sentences are shown, with a note
    streamed = "".join(line["delta"] for line in lines[:-1])
    check = final["citation_check"]
    assert check["valid"] is False and check["model_text"] == streamed
    assert check["action"] == "extractive" and final["answer"] != streamed
    assert final["answer"].startswith("From the course materials:") and final["cited"]
    assert final["note"].endswith("quoted sentences of the passages are shown instead.")

    status, body, _ = await call(jp_fetch, "llm", "api", "collections", "course", "ask", body={
        "question": OFF_TOPIC, "model": "tiny-chat", "stream": False})
    assert status == 200 and body["supported"] is False
    assert body["message"]["content"].startswith("The course materials do not cover")

    status, body, _ = await call(jp_fetch, "llm", "api", "collections", "course",
                                 method="DELETE")
    assert status == 200 and body == {"removed": True}
    status, body, _ = await call(jp_fetch, "llm", "api", "collections", "course", "search",
                                 body={"query": IN_SCOPE})
    assert_error(status, body, 404, "not_found")
    assert (course_dir / "shell.md").exists()  # the sources are untouched


async def test_without_a_chat_model_the_answer_is_retrieval_only(minilm, jp_fetch, course_dir):
    # no tiny registry: the built-in registry's chat models are not installed
    await create_and_ingest(jp_fetch)
    status, body, _ = await call(jp_fetch, "llm", "api", "collections", "course", "ask",
                                 body={"question": IN_SCOPE, "stream": False})
    assert status == 200, body
    assert body["retrieval_only"] is True and body["supported"] is True
    assert body["message"]["content"].startswith("Retrieval only")
    assert body["finish_reason"] == "retrieval_only" and body["citations"]


async def test_unknown_collection_is_404_naming_the_known_ones(minilm, jp_fetch, course_dir):
    await call(jp_fetch, "llm", "api", "collections", body={"name": "course"})
    for action, body in (("search", {"query": "x"}), ("ask", {"question": "x"}),
                         ("ingest", {"paths": ["course"]})):
        status, answer, _ = await call(jp_fetch, "llm", "api", "collections", "cuorse", action,
                                       body=body)
        assert_error(status, answer, 404, "not_found")
        assert answer["error"]["details"]["known"] == ["course"]
        assert "course" in answer["error"]["message"]
    status, answer, _ = await call(jp_fetch, "llm", "api", "collections", "cuorse", "documents")
    assert_error(status, answer, 404, "not_found")


async def test_paths_outside_root_dir_are_403_and_bad_parameters_name_the_field(
        minilm, jp_fetch, jp_root_dir, course_dir, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text("# Secret\n\nnot served")
    await call(jp_fetch, "llm", "api", "collections", body={"name": "course"})
    (jp_root_dir / "escape").symlink_to(outside)
    for path in (str(outside), os.path.relpath(outside, jp_root_dir), "course/../..", "escape"):
        status, body, _ = await call(jp_fetch, "llm", "api", "collections", "course", "ingest",
                                     body={"paths": [path]})
        assert_error(status, body, 403, "forbidden")
        assert "outside the folder this Jupyter server serves" in body["error"]["message"]
    status, body, _ = await call(jp_fetch, "llm", "api", "collections", "course", "ingest",
                                 body={"paths": ["course/missing"]})
    assert_error(status, body, 404, "not_found")

    status, body, _ = await call(jp_fetch, "llm", "api", "collections", "course", "search",
                                 body={"query": "ls", "k": 0, "mode": "fuzzy"})
    assert_error(status, body, 422, "invalid_options")
    assert {f["field"] for f in body["error"]["details"]["fields"]} == {"k", "mode"}
    status, body, _ = await call(jp_fetch, "llm", "api", "collections", body={"name": "../x"})
    assert_error(status, body, 400, "invalid_request")
    status, body, _ = await call(jp_fetch, "llm", "api", "collections",
                                 body={"name": "x", "vector_backend": "faiss"})
    assert_error(status, body, 422, "invalid_options")


async def test_a_gguf_embedder_runs_in_the_host_and_a_mismatch_is_409(minilm, tiny_registry,
                                                                      jp_fetch, course_dir):
    created, lines = await create_and_ingest(jp_fetch, "gguf", embedding_model="tiny-embed")
    assert created["embedding_model"] == "tiny-embed" and created["dimensions"] == 64
    assert len(lines[-1]["added"]) == 3
    status, found, _ = await call(jp_fetch, "llm", "api", "collections", "gguf", "search",
                                  body={"query": "git commit", "mode": "dense", "k": 2})
    assert status == 200 and len(found["results"]) == 2
    status, ps, _ = await call(jp_fetch, "llm", "api", "ps")
    assert "tiny-embed" in {m["id"] for m in ps["models"]}  # embedded by the host's worker

    status, body, _ = await call(jp_fetch, "llm", "api", "collections",
                                 body={"name": "gguf", "embedding_model": "all-MiniLM-L6-v2"})
    assert_error(status, body, 409, "embedder_mismatch")
    assert "tiny-embed" in body["error"]["message"]
    status, body, _ = await call(jp_fetch, "llm", "api", "collections",
                                 body={"name": "gguf", "vector_backend": "vss"})
    assert_error(status, body, 409, "conflict")


async def test_remote_and_local_clients_search_alike(minilm, jp_fetch, course_dir, llm_url,
                                                     llm_token, jp_root_dir):
    remote = RemoteClient(llm_url, llm_token)
    try:
        info = await asyncio.to_thread(remote.create_collection, "course")
        events = []
        summary = await asyncio.to_thread(remote.ingest, "course", ["course"], ["*.md"], (),
                                          events.append)
        assert info["name"] == "course" and len(summary["added"]) == 3 and len(events) == 3
        local = LocalClient()
        for mode in ("dense", "lexical", "hybrid"):
            there = await asyncio.to_thread(remote.search, "course", IN_SCOPE, 4, mode)
            here = local.search("course", IN_SCOPE, 4, mode)
            assert there.supported == here.supported is True
            assert [r.chunk_id for r in there] == [r.chunk_id for r in here]
            assert not any(Path(r.path).is_absolute() for r in there)  # root-relative
            assert [(jp_root_dir / r.path).resolve() for r in there] == \
                [Path(r.path).resolve() for r in here]
            assert [r.score for r in there] == pytest.approx([r.score for r in here])
            assert [r.text for r in there] == [r.text for r in here]
        assert [c["name"] for c in local.collections()] == ["course"]
        assert (await asyncio.to_thread(remote.collections))[0]["documents"] == 3
        there = await asyncio.to_thread(remote.collection_documents, "course")
        assert [d["path"] for d in there] == [d["path"] for d in local.collection_documents("course")]
        assert len(there) == 3
        answer = await asyncio.to_thread(remote.ask, "course", OFF_TOPIC)
        assert answer.supported is False and answer.citations
        assert await asyncio.to_thread(remote.delete_collection, "course")
        assert local.collections() == []
    finally:
        remote.close()


async def test_clients_stream_the_same_grounded_answer(minilm, tiny_registry, jp_fetch,
                                                       course_dir, llm_url, llm_token,
                                                       jp_root_dir):
    await create_and_ingest(jp_fetch)
    remote = RemoteClient(llm_url, llm_token)
    local = LocalClient()
    try:
        kwargs = {"model": "tiny-chat", "k": 2, "max_tokens": 10, "temperature": 0}

        def read(client):
            response = client.ask("course", IN_SCOPE, stream=True, **kwargs)
            return "".join(response), response

        there_text, there = await asyncio.to_thread(read, remote)
        here_text, here = read(local)
        assert there_text == here_text == there.answer.citation_check.model_text and there_text
        # replaced (the tiny model cites nothing): both clients show the same quoted answer
        assert there.text() == here.text() == there.answer.text != there_text
        assert there.answer.note == here.answer.note and there.answer.cited
        assert there.answer.supported and not there.answer.retrieval_only
        assert there.citations[0].source == "course/shell.md"
        assert [c.path for c in there.citations] == [c.source for c in there.citations]
        assert [(jp_root_dir / c.path).resolve() for c in there.citations] == \
            [Path(c.path).resolve() for c in here.citations]
        assert there.citations[0].href().startswith("/course/shell.md")  # from the root
        assert there.model_id == here.model_id == "tiny-chat"
        assert there.usage.completion_tokens == here.usage.completion_tokens >= 1
        once = await asyncio.to_thread(remote.ask, "course", IN_SCOPE, **kwargs)
        assert once.text == there.answer.text and once.model == "tiny-chat"
        assert once.citation_check.model_text == there_text
    finally:
        remote.close()
        local.host.close()


async def test_disconnecting_from_ask_cancels_the_generation(minilm, tiny_registry, jp_fetch,
                                                             course_dir, llm_url, llm_token):
    await create_and_ingest(jp_fetch)
    payload = {"question": IN_SCOPE, "model": "tiny-chat", "k": 1,
               "options": {"max_tokens": 1500, "temperature": 0}}
    status, full, _ = await call(jp_fetch, "llm", "api", "collections", "course", "ask",
                                 body=payload)
    full_tokens = full[-1]["usage"]["completion_tokens"]
    assert full_tokens > 500

    def read_one_line_and_hang_up() -> str:
        with httpx.Client(headers={"Authorization": f"token {llm_token}"}) as client:
            with client.stream("POST", llm_url + "llm/api/collections/course/ask",
                               json=payload) as r:
                return next(r.iter_lines())

    assert "delta" in json.loads(await asyncio.to_thread(read_one_line_and_hang_up))
    deadline = time.monotonic() + 10
    entries = []
    while time.monotonic() < deadline and len(entries) < 2:
        status, body, _ = await call(jp_fetch, "llm", "api", "history", params={"limit": "5"})
        entries = body["entries"]
        await asyncio.sleep(0.05)
    assert [e["error"] for e in entries] == ["cancelled", None], entries
    assert entries[0]["completion_tokens"] < full_tokens / 2


def test_a_shared_llm_serve_host_refuses_to_ingest_its_files(llm_serve):
    client = RemoteClient(llm_serve.url, llm_serve.token)
    try:
        with pytest.raises(Forbidden, match="does not let you read its files"):
            client.ingest("course", ["."])
        assert client.collections() == []
    finally:
        client.close()


async def test_a_symlink_inside_a_folder_to_a_file_outside_root_is_never_ingested(
        minilm, jp_fetch, jp_root_dir, course_dir, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text("# Secret\n\nThe zebra password is hunter2.")
    (course_dir / "x.md").symlink_to(outside / "secret.md")
    await create_and_ingest(jp_fetch)
    status, body, _ = await call(jp_fetch, "llm", "api", "collections", "course", "search",
                                 body={"query": "zebra password hunter2", "k": 10})
    assert status == 200
    found = {k: v for k, v in body.items() if k != "query"}  # the query is echoed back
    assert "hunter2" not in json.dumps(found)
    for path in ("course/x.md", "course/shell.md\x00.txt"):
        status, body, _ = await call(jp_fetch, "llm", "api", "collections", "course", "ingest",
                                     body={"paths": [path]})
        assert status in (400, 403), body
        assert "Traceback" not in json.dumps(body)


async def test_an_unexpected_error_inside_a_stream_is_logged_once_with_its_traceback(
        minilm, jp_fetch, course_dir, monkeypatch, caplog):
    from jupyter_llm.retrieval.collection import Collection

    def broken(self):
        raise ValueError("expected sequence of length 210 at dim 1 (got 202)")

    caplog.set_level("DEBUG")
    status, body, _ = await call(jp_fetch, "llm", "api", "collections", body={"name": "c"})
    assert status == 201, body
    monkeypatch.setattr(Collection, "document_hashes", broken)
    status, lines, _ = await call(jp_fetch, "llm", "api", "collections", "c", "ingest",
                                  body={"paths": ["course"]})
    assert status == 200  # the stream had started: the error is its last line
    last = lines[-1]
    assert last["error"]["type"] == "internal_error", lines
    assert "server log has the details" in last["error"]["message"]
    assert "210" not in json.dumps(lines)  # the details stay in the log
    logged = [r for r in caplog.records if r.exc_info and "length 210" in str(r.exc_info[1])]
    assert len(logged) == 1, [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert logged[0].levelname == "ERROR" and "ingest" in logged[0].getMessage()
