"""Writers that race: concurrent embeds on one shared model, concurrent creates of one
collection, and a create that fails part-way."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from jupyter_llm.errors import JupyterLLMError
from jupyter_llm.retrieval.collection import Collection


def _in_threads(n: int, fn) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        try:
            barrier.wait()
            fn(i)
        except BaseException as e:  # noqa: BLE001 - collected for the assertion
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return errors


def test_one_shared_embedder_serves_concurrent_threads(minilm):
    texts = {i: [("word " * (5 + 37 * j + i * 11)).strip() for j in range(6)] for i in range(6)}

    def embed(i: int) -> None:
        for _ in range(3):
            vectors = minilm.embed(texts[i])
            assert vectors.shape == (6, 384)
            minilm.count_tokens(texts[i][-1])

    assert _in_threads(6, embed) == []


def test_concurrent_creates_of_one_collection_all_get_the_whole_collection(minilm, tmp_path):
    path = tmp_path / "c.sqlite"
    opened: list[Collection] = []

    def create(i: int) -> None:
        opened.append(Collection.create(path, embedder=minilm))

    assert _in_threads(4, create) == []
    assert len(opened) == 4 and {c.meta.embedder_id for c in opened} == {minilm.id}
    for c in opened:
        c.close()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(("-wal", "-shm"))) \
        == ["c.sqlite"], "no temporary file is left"


def test_a_failed_create_leaves_nothing_and_the_name_stays_usable(minilm, tmp_path,
                                                                   monkeypatch):
    path = tmp_path / "c.sqlite"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(JupyterLLMError):
        Collection.create(path, embedder="no-such/embedding-model-xyz")
    assert list(tmp_path.iterdir()) == []

    class Broken:
        """An embedder that fails after the file would have been opened."""

        id, dimensions = "broken", 384

        def tokenizer_id(self) -> str:
            raise RuntimeError("tokenizer exploded")

    from jupyter_llm.retrieval.embedders import Embedder

    Embedder.register(Broken)
    with pytest.raises(RuntimeError):
        Collection.create(path, embedder=Broken())
    assert list(tmp_path.iterdir()) == []
    Path(path).write_bytes(b"")  # an empty file left behind by an older release
    with Collection.create(path, embedder=minilm) as coll:
        assert coll.meta.embedder_id == minilm.id
