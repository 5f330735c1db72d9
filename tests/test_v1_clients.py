"""Real OpenAI clients against ``llm/v1``, offline: ``langchain-openai`` (ChatOpenAI and
OpenAIEmbeddings) and Simon Willison's ``llm`` CLI through ``extra-openai-models.yaml``.

They come from the ``test-clients`` extra (part of ``test``). Each blocking client call runs
in a thread while the test's event loop serves the requests.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("langchain_openai")


@pytest.fixture
def chat_openai(tiny_registry, llm_url, llm_token):
    """``ChatOpenAI`` on the tiny chat model, greedy, no retries."""
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(model="tiny-chat", base_url=llm_url + "llm/v1", api_key=llm_token,
                      max_tokens=8, temperature=0, max_retries=0, timeout=120)


async def test_chat_openai_invoke_stream_and_batch(chat_openai):
    message = await asyncio.to_thread(chat_openai.invoke, "Hello there")
    assert isinstance(message.content, str) and message.content
    assert message.response_metadata["finish_reason"] == "length"
    assert message.usage_metadata["output_tokens"] == 8
    pieces = await asyncio.to_thread(lambda: [c.content for c in chat_openai.stream("Hello there")])
    assert len(pieces) > 1 and "".join(pieces) == message.content
    batch = await asyncio.to_thread(chat_openai.batch, ["Hello there", "Something else"])
    assert [m.content for m in batch][0] == message.content and batch[1].content


async def test_chat_openai_with_structured_output_on_the_tiny_model_is_valid_json(chat_openai):
    """The grammar from the schema holds even for random weights (the real-model test checks
    the answer makes sense)."""
    from pydantic import BaseModel

    class Flag(BaseModel):
        ok: bool

    roomy = chat_openai.model_copy(update={"max_tokens": 60})
    structured = roomy.with_structured_output(Flag, include_raw=True)
    result = await asyncio.to_thread(structured.invoke, "Is it ok?")
    assert result["parsing_error"] is None, result["raw"].content
    assert isinstance(result["parsed"], Flag)


async def test_openai_embeddings_offline(tiny_registry, llm_url, llm_token):
    """Offline, ``check_embedding_ctx_length=False`` is needed: otherwise the client first
    downloads tiktoken's vocabulary to split the texts (docs/rest.md)."""
    from langchain_openai import OpenAIEmbeddings

    embeddings = OpenAIEmbeddings(model="tiny-embed", base_url=llm_url + "llm/v1",
                                  api_key=llm_token, check_embedding_ctx_length=False,
                                  max_retries=0)
    docs = await asyncio.to_thread(embeddings.embed_documents, ["hello", "world"])
    query = await asyncio.to_thread(embeddings.embed_query, "hello")
    assert [len(v) for v in docs] == [64, 64]
    assert query == pytest.approx(docs[0], abs=1e-5)


def _llm(user_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LLM_USER_PATH": str(user_dir)}
    env.pop("OPENAI_API_KEY", None)
    return subprocess.run([sys.executable, "-m", "llm", *args], capture_output=True, text=True,
                          env=env, timeout=180)


@pytest.fixture
def llm_cli(tiny_registry, llm_url, llm_token, tmp_path):
    """An ``llm`` user directory with our /v1 as an extra OpenAI model and the token as key."""
    pytest.importorskip("llm")
    user_dir = tmp_path / "llm-user"
    user_dir.mkdir()
    (user_dir / "extra-openai-models.yaml").write_text(
        "- model_id: jllm-tiny\n"
        "  model_name: tiny-chat\n"
        f"  api_base: \"{llm_url}llm/v1\"\n"
        "  api_key_name: jupyter-llm\n")
    (user_dir / "keys.json").write_text(json.dumps({"jupyter-llm": llm_token}))
    return user_dir


async def test_llm_cli_prompt_stream_and_continue(llm_cli, jp_fetch):
    opts = ["-m", "jllm-tiny", "-o", "max_tokens", "6", "-o", "temperature", "0"]
    streamed = await asyncio.to_thread(_llm, llm_cli, "prompt", *opts, "Hello there")
    assert streamed.returncode == 0, streamed.stderr
    whole = await asyncio.to_thread(_llm, llm_cli, "prompt", "--no-stream", *opts, "Hello there")
    assert whole.returncode == 0, whole.stderr
    assert streamed.stdout.strip() and streamed.stdout == whole.stdout
    follow = await asyncio.to_thread(_llm, llm_cli, "prompt", "-c", *opts, "And then?")
    assert follow.returncode == 0, follow.stderr
    entries = json.loads((await jp_fetch("llm", "api", "history",
                                         params={"limit": "5"})).body)["entries"]
    assert len(entries) == 3
    latest = entries[0]["messages"]  # -c sent the previous exchange along
    assert [m["role"] for m in latest] == ["user", "assistant", "user"]
    assert latest[0]["content"] == "Hello there" and latest[-1]["content"] == "And then?"
