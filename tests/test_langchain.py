"""The LangChain integration: a retriever over a real collection (MiniLM), a chat model on
the tiny GGUF model through a real host, and an LCEL chain joining them."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("langchain_core")

from langchain_core.callbacks import BaseCallbackHandler  # noqa: E402
from langchain_core.output_parsers import StrOutputParser  # noqa: E402
from langchain_core.prompts import ChatPromptTemplate  # noqa: E402
from langchain_core.runnables import RunnablePassthrough  # noqa: E402

from jupyter_llm.client.local import LocalClient  # noqa: E402
from jupyter_llm.integrations.langchain import ChatJupyterLLM, JupyterLLMRetriever  # noqa: E402

from .test_server_collections import GIT, IN_SCOPE, PYTHON, SHELL  # noqa: E402


@pytest.fixture
def client():
    """An in-process client whose host (and model workers) is closed after the test."""
    c = LocalClient()
    yield c
    c.host.close()


@pytest.fixture
def course(client, minilm, tmp_path):
    """A collection named "course" of three small lessons."""
    folder = tmp_path / "course"
    folder.mkdir()
    for name, text in (("shell.md", SHELL), ("git.md", GIT), ("python.md", PYTHON)):
        (folder / name).write_text(text)
    client.create_collection("course")
    summary = client.ingest("course", [str(folder)])
    assert len(summary["added"]) == 3
    return folder


def test_importing_jupyter_llm_does_not_import_langchain():
    code = ("import sys, jupyter_llm, jupyter_llm.integrations, jupyter_llm.client; "
            "jupyter_llm.connect; print(sorted(m for m in sys.modules if 'langchain' in m))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_retriever_returns_the_collections_chunks_with_citations(client, course):
    retriever = JupyterLLMRetriever(collection="course", k=2, client=client)
    docs = retriever.invoke(IN_SCOPE)
    expected = client.search("course", IN_SCOPE, 2, "hybrid")
    assert [d.page_content for d in docs] == [r.text for r in expected]
    top = docs[0].metadata
    assert top["path"] == str(course / "shell.md") and "ls" in docs[0].page_content
    assert top["heading"].endswith("Listing files")
    assert 1 <= top["start_line"] <= top["end_line"]
    assert top["score"] == pytest.approx(expected[0].score) and top["supported"] is True
    # by path, in dense mode, restricted to one file
    path = client.collections()[0]["path"]
    dense = JupyterLLMRetriever(collection=path, k=1, mode="dense", client=client,
                                source=str(course / "git.md"))
    (only,) = dense.invoke("how do I undo the last commit?")
    assert only.metadata["path"] == str(course / "git.md") and "revert" in only.page_content


def test_the_chat_model_invokes_and_streams_on_the_tiny_model(tiny_registry, client):
    llm = ChatJupyterLLM(model="tiny-chat", max_tokens=12, temperature=0, client=client)
    message = llm.invoke("Hello")
    assert isinstance(message.content, str) and message.content
    assert message.response_metadata["model_name"] == "tiny-chat"
    assert message.usage_metadata["output_tokens"] >= 1
    chunks = list(llm.stream("Hello"))
    assert len(chunks) >= 2
    assert "".join(c.content for c in chunks) == message.content  # deterministic at temperature 0
    merged = sum(chunks[1:], chunks[0])
    assert merged.usage_metadata["output_tokens"] == message.usage_metadata["output_tokens"]
    assert merged.response_metadata["finish_reason"] == message.response_metadata["finish_reason"]
    assert ChatJupyterLLM()._identifying_params == {"model": None}


def test_the_chat_model_uses_connect_by_default(tiny_registry):
    import jupyter_llm

    llm = ChatJupyterLLM(model="tiny-chat", max_tokens=4, temperature=0)
    try:
        assert llm.invoke([("system", "Be brief."), ("human", "Hi")]).usage_metadata
    finally:
        jupyter_llm.connect().host.close()


class PromptSpy(BaseCallbackHandler):
    """Records the messages each chat model call received."""

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def on_chat_model_start(self, serialized, messages, **kwargs) -> None:
        self.prompts.extend(m.content for batch in messages for m in batch)


def test_an_lcel_chain_grounds_the_chat_model_on_retrieved_chunks(tiny_registry, client, course):
    retriever = JupyterLLMRetriever(collection="course", k=1, client=client)
    llm = ChatJupyterLLM(model="tiny-chat", max_tokens=8, temperature=0, client=client)
    prompt = ChatPromptTemplate.from_messages([
        ("system", "Answer from this context only:\n{context}"), ("human", "{question}")])

    def format_docs(docs) -> str:
        return "\n\n".join(f"[{d.metadata['source']}] {d.page_content}" for d in docs)

    chain = ({"context": retriever | format_docs, "question": RunnablePassthrough()}
             | prompt | llm | StrOutputParser())
    spy = PromptSpy()
    answer = chain.invoke(IN_SCOPE, config={"callbacks": [spy]})
    assert isinstance(answer, str) and answer
    system, question = spy.prompts
    assert "shell.md" in system and "`ls` command lists the files" in system
    assert question == IN_SCOPE
    streamed = "".join(chain.stream(IN_SCOPE))
    assert streamed == answer
