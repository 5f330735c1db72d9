"""``LocalClient``: the ``Client`` interface over a ``ModelHost`` in this process."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..host import ModelHost
from ..models import Message, Response
from .base import Client, ProgressCallback

if TYPE_CHECKING:
    from ..host.collections import HostCollections
    from ..retrieval.answer import Answer
    from ..retrieval.evaluate import EvalItem
    from ..retrieval.questions import Question
    from ..retrieval.search import SearchResults

__all__ = ["LocalClient"]


class LocalClient(Client):
    """Runs models in this process's own host (plain IPython, scripts, the CLI)."""

    def __init__(self, host: ModelHost | None = None) -> None:
        self.host = host or ModelHost()
        self._colls: HostCollections | None = None

    def __repr__(self) -> str:
        return "<LocalClient (in-process host)>"

    def close(self) -> None:
        """Close the collections and stop the host's worker processes."""
        if self._colls is not None:
            self._colls.close()
        self.host.close()

    def models(self, tag: str | None = None) -> list[dict[str, Any]]:
        """Every registry model with its state."""
        return self.host.models(tag)

    def pull(self, model_id: str, progress: ProgressCallback | None = None) -> dict[str, Any]:
        """Download a model, calling ``progress`` with progress dicts."""
        callback = None if progress is None else (lambda p: progress(p.to_dict()))
        return self.host.pull(model_id, progress=callback)

    def cancel_pull(self, model_id: str) -> bool:
        """Cancel a running download."""
        return self.host.cancel_pull(model_id)

    def remove(self, model_id: str) -> bool:
        """Delete an installed model."""
        return self.host.remove(model_id)

    def load(self, model_id: str, **options: Any) -> dict[str, Any]:
        """Load a model now."""
        return self.host.load(model_id, **options)

    def unload(self, model_id: str) -> bool:
        """Unload a model."""
        return self.host.unload(model_id)

    def ps(self) -> list[dict[str, Any]]:
        """The loaded models."""
        return self.host.ps()

    def chat(self, messages: list[Message], model: str | None = None, *, stream: bool = True,
             log: bool = True, tutoring: bool = False, **options: Any) -> Response:
        """Run a chat in this process."""
        return self.host.chat(messages, model, log=log, face="python", tutoring=tutoring,
                              **options)

    def generate(self, prompt: str, model: str | None = None, *, stream: bool = True,
                 log: bool = True, **options: Any) -> Response:
        """Run a raw completion in this process."""
        return self.host.generate(prompt, model, log=log, face="python", **options)

    def embed(self, texts: list[str], model: str | None = None) -> list[list[float]]:
        """Embed texts in this process."""
        return self.host.embed(texts, model)

    # -- the classroom (this process's host and data directory) -------------------------------
    def me(self) -> dict[str, Any]:
        """This process's user (the OS user) and its role under the local policy."""
        classroom = self.host.classroom
        identity = classroom.identify(None)
        role = classroom.policy.policy.roles[identity.role]
        return {"name": identity.name, "role": identity.role, "history": role.history,
                "export": role.export, "manage_tokens": role.manage_tokens,
                "tutoring_guard": role.tutoring_guard and not role.sees_guarded,
                "models": role.models, "usage": classroom.gate.usage(identity),
                "policy_error": classroom.policy.error}

    def feedback(self, entry: int | str, *, rating: int | None = None,
                 score: float | None = None, comment: str | None = None) -> dict[str, Any]:
        """Rate an entry of this machine's history."""
        from ..history import History

        log = self.host.history or History()
        return log.feedback(entry, rating=rating, score=score, comment=comment)

    def export_history(self, fmt: str = "jsonl", **filters: Any) -> str:
        """This machine's history as CSV or JSONL."""
        import io

        from ..history import History

        out = io.StringIO()
        (self.host.history or History()).export(out, fmt, **filters)
        return out.getvalue()

    def tokens(self) -> list[dict[str, Any]]:
        """The named tokens of this machine's data directory."""
        from ..host.tokens import TokenStore

        return TokenStore().list()

    def add_token(self, name: str, role: str = "student") -> dict[str, Any]:
        """Issue a named token in this machine's data directory (for its `jupyter llm serve`)."""
        from ..errors import InvalidRequest
        from ..host.tokens import TokenStore

        roles = self.host.classroom.policy.policy.roles
        if role not in roles:
            raise InvalidRequest(f"Unknown role {role!r}; the roles are {', '.join(sorted(roles))}"
                                 " (set the policy file with JUPYTER_LLM_POLICY_FILE).")
        return {"name": name, "role": role, "token": TokenStore().add(name, role)}

    def revoke_token(self, name: str) -> bool:
        """Revoke a named token of this machine's data directory."""
        from ..host.tokens import TokenStore

        return TokenStore().revoke(name)

    def history(self, limit: int = 20, *, model: str | None = None, user: str | None = None,
                collection: str | None = None, since: float | None = None,
                until: float | None = None) -> list[dict[str, Any]]:
        """The most recent requests, newest first (empty when history is off)."""
        log = self.host.history
        return [] if log is None else log.entries(limit, model=model, user=user,
                                                  collection=collection, since=since,
                                                  until=until)

    def history_stats(self, *, by: str = "model", user: str | None = None,
                      collection: str | None = None, since: float | None = None,
                      until: float | None = None) -> dict[str, Any]:
        """Statistics of this machine's history."""
        from ..history import History

        log = self.host.history or History()
        return log.stats(by=by, user=user, collection=collection, since=since, until=until)

    # -- saved conversations (this machine's data directory, as the OS user) --------------------
    def _conversations(self) -> tuple[Any, str]:
        from ..host.conversations import Conversations

        return Conversations(), self.host.classroom.identify(None).name

    def conversations(self) -> list[dict[str, Any]]:
        """Your saved conversations on this machine."""
        store, user = self._conversations()
        return store.list(user)

    def conversation(self, conversation_id: str) -> dict[str, Any]:
        """One of your saved conversations with its messages."""
        store, user = self._conversations()
        return store.get(user, conversation_id)

    def save_conversation(self, messages: list[dict[str, Any]], *,
                          conversation_id: str | None = None, title: str | None = None,
                          model: str | None = None,
                          collection: str | None = None) -> dict[str, Any]:
        """Save a conversation on this machine."""
        store, user = self._conversations()
        return store.save(user, messages, conversation_id=conversation_id, title=title,
                          model=model, collection=collection)

    def delete_conversation(self, conversation_id: str) -> bool:
        """Delete one of your saved conversations."""
        store, user = self._conversations()
        return store.delete(user, conversation_id)

    def export_conversation(self, conversation_id: str, path: str | None = None) -> str:
        """Write a saved conversation as a notebook in the working directory."""
        import os

        from ..host.conversations import write_notebook

        written = write_notebook(self.conversation(conversation_id), os.getcwd(), path)
        return os.path.relpath(written, os.getcwd())

    # -- retrieval collections (the host's collections service in this process) ----------------
    @property
    def collections_service(self) -> HostCollections:
        """Collections next to this client's host (names in the data directory, or paths)."""
        if self._colls is None:
            from ..host.collections import HostCollections

            self._colls = HostCollections(lambda: self.host)
        return self._colls

    def collections(self) -> list[dict[str, Any]]:
        """Every collection in the data directory."""
        return self.collections_service.list()

    def create_collection(self, name: str, vector_backend: str | None = None, *,
                          embedding_model: str | None = None, chunk_size: int | None = None,
                          chunk_overlap: int | None = None) -> dict[str, Any]:
        """Create a collection (name or ``.sqlite`` path), or return a matching existing one."""
        info, _ = self.collections_service.create(
            name, vector_backend=vector_backend, embedding_model=embedding_model,
            chunk_size=chunk_size, chunk_overlap=chunk_overlap)
        return info

    def collection_documents(self, name: str) -> list[dict[str, Any]]:
        """The documents of a collection."""
        return self.collections_service.documents(name)

    def delete_collection(self, name: str) -> bool:
        """Delete a collection file."""
        return self.collections_service.delete(name)

    def collection(self, name: str) -> dict[str, Any]:
        """One collection's summary."""
        service = self.collections_service
        return service.info(service.open(name))

    def configure_collection(self, name: str, *,
                             tutoring_guard: bool | None = None) -> dict[str, Any]:
        """Change a collection's settings in this process."""
        return self.collections_service.configure(name, tutoring_guard=tutoring_guard)

    def ingest(self, name: str, paths: Sequence[str], include: Sequence[str] = (),
               exclude: Sequence[str] = (),
               progress: ProgressCallback | None = None) -> dict[str, Any]:
        """Ingest files and folders (relative to the working directory)."""
        return self.collections_service.ingest(name, paths, include=include, exclude=exclude,
                                               progress=progress)

    def search(self, name: str, query: str, k: int = 5, mode: str = "hybrid", *,
               source: str | None = None, threshold: float | None = None) -> SearchResults:
        """Search a collection in this process."""
        return self.collections_service.search(name, query, k=k, mode=mode, source=source,
                                               threshold=threshold)

    def search_many(self, name: str, queries: Sequence[str], k: int = 5, mode: str = "hybrid",
                    *, source: str | None = None,
                    threshold: float | None = None) -> list[SearchResults]:
        """Search several queries in this process."""
        return self.collections_service.search_many(name, list(queries), k=k, mode=mode,
                                                    source=source, threshold=threshold)

    def ask(self, name: str, question: str, model: str | None = None, stream: bool = False, *,
            k: int = 5, mode: str = "hybrid", source: str | None = None,
            threshold: float | None = None, retrieval_only: bool = False, log: bool = True,
            **options: Any) -> Answer | Response:
        """A grounded answer with this process's host as the chat model."""
        from ..host.grounded import stream_answer

        run = self.collections_service.prepare_ask(
            name, question, model=model, k=k, mode=mode, source=source, threshold=threshold,
            retrieval_only=retrieval_only, options=options, log=log, face="python")
        return stream_answer(run) if stream else run.run()

    def evaluate_items(self, name: str, questions: Sequence[Question],
                       models: Sequence[str | None] = (), *, k: int = 5, mode: str = "hybrid",
                       threshold: float | None = None,
                       options: dict[str, Any] | None = None) -> Iterator[EvalItem]:
        """Measure questions × models in this process (answers are not logged)."""
        return self.collections_service.evaluate_items(
            name, questions, models, k=k, mode=mode, threshold=threshold, options=options,
            log=False, face="python")
