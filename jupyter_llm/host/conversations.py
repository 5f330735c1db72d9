"""Saved conversations: one SQLite file (WAL, ``busy_timeout``) beside the history, each
conversation owned by one user (the identity the host resolved); nobody reads another's.

    store = Conversations()                      # paths.conversations_path()
    saved = store.save("ada", [{"role": "user", "content": "hi"}, ...])
    store.list("ada"); store.get("ada", saved["id"]); store.delete("ada", saved["id"])
    write_notebook(saved, root)                  # the turns as a .ipynb in ``root``
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

from .. import paths
from ..confine import confine
from ..errors import InvalidRequest, NotFound, TooLarge
from ..sqlite_file import SQLiteFile

__all__ = ["Conversations", "to_notebook", "write_notebook", "MAX_BYTES", "MAX_MESSAGES"]

MAX_BYTES = 4_000_000
MAX_MESSAGES = 2000
MAX_TITLE = 200
_ROLES = ("system", "user", "assistant")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    title TEXT NOT NULL,
    model TEXT,
    collection TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    messages TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_user ON conversations (user, updated_at);
"""
_SUMMARY = "id, title, model, collection, created_at, updated_at, json_array_length(messages)"
_ID = re.compile(r"^[0-9a-f]{32}$")


class Conversations(SQLiteFile):
    """Conversations stored per user in SQLite, safe for concurrent writers."""

    what = "conversations file"

    def __init__(self, path: str | Path | None = None) -> None:
        super().__init__(path if path is not None else paths.conversations_path())

    def _setup(self, conn: sqlite3.Connection) -> None:
        conn.executescript(_SCHEMA)

    def list(self, user: str, limit: int = 200) -> list[dict[str, Any]]:
        """The user's conversations, most recently changed first (without their messages)."""
        if not self.path.exists():
            return []
        with self._connect() as conn:
            rows = conn.execute(f"SELECT {_SUMMARY} FROM conversations WHERE user = ? "
                                "ORDER BY updated_at DESC, rowid DESC LIMIT ?",
                                [user, limit]).fetchall()
        return [_summary(r) for r in rows]

    def get(self, user: str, conversation_id: str) -> dict[str, Any]:
        """One of the user's conversations with its messages; ``NotFound`` for any other."""
        row = None
        if self.path.exists() and _ID.match(str(conversation_id)):
            with self._connect() as conn:
                row = conn.execute(f"SELECT {_SUMMARY}, messages FROM conversations "
                                   "WHERE id = ? AND user = ?", [conversation_id, user]).fetchone()
        if row is None:
            raise NotFound(f"No saved conversation {conversation_id!r} of yours; list yours "
                           "with GET llm/api/conversations.", details={"id": conversation_id})
        return {**_summary(row[:-1]), "messages": json.loads(row[-1])}

    def save(self, user: str, messages: list[dict[str, Any]], *, conversation_id: str | None = None,
             title: str | None = None, model: str | None = None,
             collection: str | None = None) -> dict[str, Any]:
        """Create a conversation (no id) or replace the messages of one of the user's; returns
        it (with messages). The title defaults to the first question, then stays."""
        text = _check_messages(messages)
        if title is not None and (not isinstance(title, str) or len(title) > MAX_TITLE):
            raise InvalidRequest(f"title must be text of at most {MAX_TITLE} characters.",
                                 details={"field": "title"})
        title = (title or "").strip() or None
        now = time.time()
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if conversation_id is None:
                    conversation_id = uuid.uuid4().hex
                    conn.execute("INSERT INTO conversations VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                 [conversation_id, user, title or _title(messages), model,
                                  collection, now, now, text])
                else:
                    updated = conn.execute(
                        "UPDATE conversations SET title = COALESCE(?, title), model = COALESCE(?, model), "
                        "collection = COALESCE(?, collection), updated_at = ?, messages = ? "
                        "WHERE id = ? AND user = ?",
                        [title, model, collection, now, text, conversation_id, user]).rowcount
                    if not updated:
                        raise NotFound(f"No saved conversation {conversation_id!r} of yours; "
                                       "save it without an id to start a new one.",
                                       details={"id": conversation_id})
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return self.get(user, conversation_id)

    def delete(self, user: str, conversation_id: str) -> bool:
        """Delete one of the user's conversations; False when there was none."""
        if not self.path.exists():
            return False
        with self._connect() as conn:
            return bool(conn.execute("DELETE FROM conversations WHERE id = ? AND user = ?",
                                     [conversation_id, user]).rowcount)


def _check_messages(messages: Any) -> str:
    """The messages as JSON text, or a clear ``InvalidRequest`` naming what is wrong."""
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages must be a non-empty list of {role, content} objects.",
                             details={"field": "messages"})
    if len(messages) > MAX_MESSAGES:
        raise TooLarge(f"A conversation holds at most {MAX_MESSAGES} messages; start a new one.",
                       details={"field": "messages"})
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in _ROLES \
                or not isinstance(m.get("content"), str):
            raise InvalidRequest(f"messages[{i}] must be an object with a role "
                                 f"({', '.join(_ROLES)}) and text content.",
                                 details={"field": f"messages[{i}]"})
    text = json.dumps(messages, ensure_ascii=False, default=str)
    if len(text.encode()) > MAX_BYTES:
        raise TooLarge(f"The conversation is over {MAX_BYTES // 1_000_000} MB; start a new one.",
                       details={"field": "messages"})
    return text


def _title(messages: list[dict[str, Any]]) -> str:
    first = next((m["content"] for m in messages if m["role"] == "user"), "") or "Conversation"
    line = " ".join(first.split())
    return line if len(line) <= 60 else line[:59].rstrip() + "…"


def _summary(row: tuple[Any, ...]) -> dict[str, Any]:
    cid, title, model, collection, created, updated, count = row
    return {"id": cid, "title": title, "model": model, "collection": collection,
            "created_at": created, "updated_at": updated, "message_count": count}


# -- export to a notebook ----------------------------------------------------------------------
_FENCE = re.compile(r"^(?P<fence>```+|~~~+)[ \t]*(?P<lang>[\w+.-]*)[^\n]*\n(?P<code>.*?)^(?P=fence)[ \t]*$",
                    re.MULTILINE | re.DOTALL)
_PYTHON = ("", "python", "py", "python3", "ipython", "ipython3")


def _cell(kind: str, source: str, meta: dict[str, Any]) -> dict[str, Any]:
    cell: dict[str, Any] = {"cell_type": kind, "id": uuid.uuid4().hex[:8],
                            "metadata": {"jupyter_llm": meta}, "source": source}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def _answer_cells(text: str, meta: dict[str, Any]) -> list[dict[str, Any]]:
    """An answer as markdown cells with its Python code blocks as code cells between them."""
    cells, prose, at = [], [], 0
    for match in _FENCE.finditer(text):
        if match.group("lang").lower() not in _PYTHON:
            continue  # shell, output, JSON…: stays in the markdown
        prose.append(text[at:match.start()])
        words = "".join(prose).strip()
        if words:
            cells.append(_cell("markdown", words, meta))
        prose = []
        cells.append(_cell("code", match.group("code").rstrip("\n"), meta))
        at = match.end()
    rest = "".join(prose) + text[at:]
    if rest.strip():
        cells.append(_cell("markdown", rest.strip(), meta))
    return cells


def to_notebook(conversation: dict[str, Any]) -> dict[str, Any]:
    """A conversation as an nbformat 4 notebook: a title cell, each question as a markdown
    cell, each answer as markdown with its Python code blocks as (unrun) code cells."""
    title = conversation.get("title") or "Conversation"
    cells = [_cell("markdown", f"# {title}\n\nA conversation saved from the LLM chat"
                   + (f" with {conversation['model']}" if conversation.get("model") else "")
                   + ".", {"role": "title", "conversation": conversation.get("id")})]
    for m in conversation.get("messages", []):
        meta = {k: m[k] for k in ("role", "model", "request_id") if m.get(k)}
        if m["role"] == "assistant":
            body = m["content"]
            citations = m.get("citations") or []
            if citations:
                body += "\n\n**Sources**  \n" + "  \n".join(
                    f"[{c.get('n', i + 1)}] {c.get('source') or c.get('path', '')}"
                    for i, c in enumerate(citations) if isinstance(c, dict))
            label = f"**{m.get('model') or 'Assistant'}:**\n\n"
            cells += _answer_cells(label + body, meta)
        else:
            who = "You" if m["role"] == "user" else "System"
            cells.append(_cell("markdown", f"**{who}:** {m['content']}", meta))
    return {"cells": cells, "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
        "jupyter_llm": {"conversation": conversation.get("id"), "title": title}},
        "nbformat": 4, "nbformat_minor": 5}


def write_notebook(conversation: dict[str, Any], root: str | Path,
                   path: str | None = None) -> Path:
    """Write the conversation as a notebook inside ``root``: at ``path`` (relative to it, never
    over an existing file) or at a new name from the title; returns the file written."""
    base = Path(root).expanduser().resolve()
    if path is not None:
        if not str(path).endswith(".ipynb"):
            raise InvalidRequest("path must name a .ipynb file.", details={"field": "path"})
        target = confine(path, base, what="path")
        if target.exists():
            raise InvalidRequest(f"{path} exists already; choose another name.",
                                 details={"field": "path"})
    else:
        stem = re.sub(r"[^\w-]+", "-", conversation.get("title") or "")[:40].strip("-").lower()
        stem = stem or "conversation"
        target = base / f"{stem}.ipynb"
        n = 1
        while target.exists():
            n += 1
            target = base / f"{stem}-{n}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(to_notebook(conversation), indent=1, ensure_ascii=False) + "\n"
    with open(target, "x", encoding="utf-8") as f:  # never replace a file (a race loses nothing)
        f.write(text)
    return target
