"""Embedders: batching, normalisation, ids; OpenAI-compatible against a real local HTTP server."""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from jupyter_llm.errors import BackendError
from jupyter_llm.retrieval.embedders import (
    DEFAULT_EMBEDDER,
    HostEmbedder,
    OpenAIEmbedder,
    get_embedder,
)


class _Embeddings(BaseHTTPRequestHandler):
    requests: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        if body["model"] != "tiny-embed":
            self.send_response(404)
            self.end_headers()
            self.wfile.write(b'{"error": {"message": "model not found"}}')
            return
        data = [{"object": "embedding", "index": i,
                 "embedding": [float(len(t)), 1.0, 0.0, 2.0]} for i, t in enumerate(body["input"])]
        payload = json.dumps({"object": "list", "data": data[::-1], "model": body["model"],
                              "usage": {"prompt_tokens": 1, "total_tokens": 1}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def embeddings_server():
    _Embeddings.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Embeddings)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_openai_embedder_batches_orders_and_normalises(embeddings_server):
    emb = OpenAIEmbedder("tiny-embed", base_url=embeddings_server, api_key="k", batch_size=3)
    texts = ["a", "bb", "ccc", "dddd", "eeeee", "ffffff", "g"]
    vectors = emb.embed(texts)
    assert [len(r["input"]) for r in _Embeddings.requests] == [3, 3, 1]
    assert vectors.shape == (7, 4) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    raw = np.array([len(texts[1]), 1.0, 0.0, 2.0])
    assert np.allclose(vectors[1], raw / np.linalg.norm(raw))  # order follows "index"
    assert emb.dimensions == 4
    assert emb.id == f"openai:tiny-embed@{embeddings_server}"
    assert get_embedder(emb.id).id == emb.id


def test_openai_embedder_errors_say_what_to_check(embeddings_server):
    emb = OpenAIEmbedder("missing", base_url=embeddings_server, api_key="k")
    with pytest.raises(BackendError, match="model .missing.. answered 404"):
        emb.embed(["x"])


def test_host_models_are_wrapped_and_batched():
    class HostModel:
        model_id = "gguf/tiny-embed"

        def __init__(self):
            self.batches = []

        def embed(self, texts):
            self.batches.append(len(texts))
            return [[1.0, float(i)] for i in range(len(texts))]

    model = HostModel()
    emb = get_embedder(model)
    assert isinstance(emb, HostEmbedder) and emb.id == "gguf/tiny-embed"
    out = emb.embed([str(i) for i in range(70)])
    assert out.shape == (70, 2) and model.batches == [32, 32, 6]


def test_minilm_is_the_offline_default(minilm):
    assert minilm.id == DEFAULT_EMBEDDER
    v = minilm.embed(["Git records snapshots of a project.", "A loop repeats code."])
    assert v.shape == (2, 384) and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    same = minilm.embed(["Git records snapshots of a project."])[0]
    assert float(same @ v[0]) == pytest.approx(1.0, abs=1e-5)
    assert minilm.count_tokens("hello world") == 2


def test_recent_texts_are_embedded_once_and_give_the_same_vectors(embeddings_server,
                                                                  monkeypatch):
    from jupyter_llm.retrieval import embedders

    emb = OpenAIEmbedder("tiny-embed", base_url=embeddings_server, api_key="k")
    again = emb.embed_recent(["a", "bb", "a"])
    assert [r["input"] for r in _Embeddings.requests] == [["a", "bb"]]  # each text once
    np.testing.assert_allclose(again, emb.embed(["a", "bb", "a"]))
    _Embeddings.requests.clear()
    emb.embed_recent(["bb", "ccc"])
    assert [r["input"] for r in _Embeddings.requests] == [["ccc"]]
    assert emb.embed_recent([]).shape == (0, 4)

    monkeypatch.setattr(embedders, "RECENT_TEXTS", 2)
    _Embeddings.requests.clear()
    emb.embed_recent(["dddd"])  # keeps the two used last: ccc and dddd
    emb.embed_recent(["bb", "dddd"])
    assert [r["input"] for r in _Embeddings.requests] == [["dddd"], ["bb"]]

    # a model behind an id may change: another instance with the same id shares nothing
    _Embeddings.requests.clear()
    OpenAIEmbedder("tiny-embed", base_url=embeddings_server, api_key="k").embed_recent(["bb"])
    assert [r["input"] for r in _Embeddings.requests] == [["bb"]]


def test_instances_of_one_sentence_transformers_model_share_their_recent_texts(minilm):
    from jupyter_llm.retrieval.embedders import SentenceTransformerEmbedder

    texts = [f"Window {uuid.uuid4().hex} of a passage about git commit.", "A loop repeats code."]
    seen: list[list[str]] = []
    first, second = SentenceTransformerEmbedder(), SentenceTransformerEmbedder()
    for emb in (first, second):
        real = emb._embed_batch
        emb._embed_batch = lambda batch, real=real: seen.append(list(batch)) or real(batch)
    vectors = first.embed_recent(texts)
    assert second.embed_recent(texts[:1]).tobytes() == vectors[:1].tobytes()
    assert len(seen) == 1 and texts[0] in seen[0]  # the second instance embedded nothing
    np.testing.assert_allclose(vectors, minilm.embed(texts), atol=1e-5)


def test_a_folder_that_is_not_a_sentence_transformers_model_is_one_clear_error(tmp_path):
    pytest.importorskip("sentence_transformers")
    from jupyter_llm.errors import ModelNotReady
    from jupyter_llm.retrieval.embedders import SentenceTransformerEmbedder

    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelNotReady, match="Cannot load the embedding model .* Give a"):
        SentenceTransformerEmbedder(str(tmp_path)).embed(["x"])
