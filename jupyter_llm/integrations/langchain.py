"""LangChain integration: a retriever over a jupyter-llm collection and a chat model.

Both talk to a ``Client`` (``jupyter_llm.connect()`` by default), so in a kernel started by
a Jupyter server they use the server's collections and loaded models, and elsewhere an
in-process host. Importing this module imports ``langchain-core``; nothing else in
jupyter_llm does::

    from jupyter_llm.integrations.langchain import ChatJupyterLLM, JupyterLLMRetriever
    retriever = JupyterLLMRetriever(collection="course", k=4)
    llm = ChatJupyterLLM(model="tiny-chat", max_tokens=256)
    chain = {"context": retriever | format_docs, "question": RunnablePassthrough()} \\
        | prompt | llm | StrOutputParser()
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..errors import InvalidRequest, MissingDependency

try:
    from langchain_core.callbacks import CallbackManagerForLLMRun, CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
    from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
    from langchain_core.retrievers import BaseRetriever
    from pydantic import ConfigDict, Field
except ImportError as e:  # pragma: no cover - the langchain extra is not installed
    raise MissingDependency.from_package("langchain-core", "The LangChain integration", "langchain") from e

__all__ = ["JupyterLLMRetriever", "ChatJupyterLLM", "to_messages"]

_ROLES = {"system": "system", "human": "user", "ai": "assistant"}


def _client(client: Any) -> Any:
    if client is not None:
        return client
    from ..client import connect

    return connect()


def _text(content: Any) -> str:
    """Message content as text (string content, or the text blocks of a content list)."""
    if isinstance(content, str):
        return content
    parts = []
    for block in content or []:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        else:
            raise InvalidRequest(f"Only text content is supported, not {block.get('type')!r} "
                                 "blocks; send the text of the message.")
    return "".join(parts)


def to_messages(messages: list[BaseMessage]) -> list[dict[str, str]]:
    """LangChain messages as jupyter-llm chat messages (system, user, assistant)."""
    out = []
    for m in messages:
        role = _ROLES.get(m.type) or (getattr(m, "role", None) if m.type == "chat" else None)
        if role not in ("system", "user", "assistant"):
            raise InvalidRequest(
                f"A {m.type!r} message cannot be sent to a jupyter-llm model (no tool calling); "
                "use system, human and ai messages.")
        out.append({"role": role, "content": _text(m.content)})
    return out


class JupyterLLMRetriever(BaseRetriever):
    """Retrieves chunks of a jupyter-llm collection as ``Document``s with citation metadata."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    collection: str = Field(description="A collection name, or (in-process) a .sqlite path.")
    k: int = Field(4, description="Number of chunks to return.")
    mode: str = Field("hybrid", description='"dense", "lexical" or "hybrid".')
    source: str | None = Field(None, description="Only files under this path, or a glob.")
    client: Any = Field(None, exclude=True, description="A Client; default connect().")

    def _get_relevant_documents(self, query: str, *,
                                run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        results = _client(self.client).search(self.collection, query, self.k, self.mode,
                                               source=self.source)
        return [Document(
            page_content=r.text, id=str(r.chunk_id),
            metadata={"source": r.source, "path": r.path, "title": r.title,
                      "heading": r.heading, "start_line": r.start_line, "end_line": r.end_line,
                      "cell_index": r.cell_index, "page": r.page, "score": r.score,
                      "similarity": r.similarity, "chunk_id": r.chunk_id,
                      "collection": self.collection, "supported": results.supported})
            for r in results]


class ChatJupyterLLM(BaseChatModel):
    """A jupyter-llm model (local GGUF or remote) as a LangChain chat model, with streaming."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: str | None = Field(None, description="Id, alias, tags:… query; None: the default.")
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    seed: int | None = None
    model_kwargs: dict[str, Any] = Field(default_factory=dict,
                                         description="Other generation options.")
    log: bool = Field(True, description="Record requests in the jupyter-llm history.")
    client: Any = Field(None, exclude=True, description="A Client; default connect().")

    @property
    def _llm_type(self) -> str:
        return "jupyter-llm"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, **self._options(None)}

    def _options(self, stop: list[str] | None, **kwargs: Any) -> dict[str, Any]:
        options = {k: getattr(self, k) for k in ("temperature", "max_tokens", "top_p", "seed")
                   if getattr(self, k) is not None}
        options.update(self.model_kwargs)
        options.update(kwargs)
        if stop:
            options["stop"] = list(stop)
        return options

    def _start(self, messages: list[BaseMessage], stop: list[str] | None,
               **kwargs: Any) -> Any:
        return _client(self.client).chat(to_messages(messages), self.model, stream=True,
                                         log=self.log, **self._options(stop, **kwargs))

    @staticmethod
    def _metadata(response: Any) -> tuple[dict[str, Any], dict[str, int] | None]:
        usage = None
        if response.usage is not None:
            usage = {"input_tokens": response.usage.prompt_tokens,
                     "output_tokens": response.usage.completion_tokens,
                     "total_tokens": response.usage.prompt_tokens
                     + response.usage.completion_tokens}
        return {"model_name": response.model_id, "finish_reason": response.finish_reason}, usage

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None,
                  **kwargs: Any) -> ChatResult:
        response = self._start(messages, stop, **kwargs)
        text = response.text()
        metadata, usage = self._metadata(response)
        message = AIMessage(content=text, response_metadata=metadata, usage_metadata=usage)
        return ChatResult(generations=[ChatGeneration(message=message)],
                          llm_output={"model_name": response.model_id})

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None,
                **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        response = self._start(messages, stop, **kwargs)
        for piece in response:
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager is not None:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk
        metadata, usage = self._metadata(response)
        yield ChatGenerationChunk(message=AIMessageChunk(
            content="", response_metadata=metadata, usage_metadata=usage))
