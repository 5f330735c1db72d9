"""Answers never worse than the passages: short source labels, a repetition guard that stops
the generation, citation checks, and the extractive answer shown when a model's answer fails."""

from __future__ import annotations

import itertools
import re

import pytest

from jupyter_llm.retrieval.answer import ask, build_messages, checked, sampling_defaults
from jupyter_llm.retrieval.citations import Citation, check_citations, cited_numbers
from jupyter_llm.retrieval.extractive import (
    EVIDENCE_LEAD,
    EXTRACTIVE_LEAD,
    WINDOW_WORDS,
    extractive_answer,
    focused,
    support,
    units,
)
from jupyter_llm.retrieval.repetition import find_repetition
from jupyter_llm.retrieval.search import SearchResult, SearchResults

QUESTION = "How do I tell Git to ignore files I don't want to track?"


class ScriptedModel:
    """A chat model double that streams the given pieces (forever, if ``cycle``)."""

    model_id = "scripted"

    def __init__(self, pieces, cycle=False):
        self.pieces = pieces
        self.cycle = cycle
        self.read = 0
        self.closed = False
        self.options = {}

    def prompt(self, *, messages, stream=True, **options):
        self.options = options
        source = itertools.cycle(self.pieces) if self.cycle else iter(self.pieces)
        try:
            for piece in source:
                self.read += 1
                yield piece
        finally:
            self.closed = True


def test_sources_are_labelled_with_short_titles_without_paths_or_lines(course_collection):
    results = course_collection.search(QUESTION, k=3)
    user = build_messages(QUESTION, results)[1]["content"]
    for c in results.citations():
        assert f"[{c.n}] {c.short_title()}\n" in user
        assert c.path not in user and c.source not in user
    assert not re.search(r"lines? \d", user.split("Question:")[0].split("\n", 1)[0])
    labels = [line for line in user.splitlines() if re.match(r"\[\d\] ", line)]
    assert len(labels) == 3 and not any("/" in line or ".md" in line for line in labels)


def test_short_title_is_the_heading_with_the_document_title():
    c = Citation(1, "shell-novice/episodes/03-create.md", "/x/03-create.md",
                 "Working With Files and Directories",
                 "Working With Files and Directories > Creating files", 10, 20)
    assert c.short_title() == "Creating files (Working With Files and Directories)"
    bare = Citation(2, "notes/02-loops_intro.md", "/x/02-loops_intro.md")
    assert bare.short_title() == "loops intro"


@pytest.mark.parametrize(("text", "kept"), [
    ("Here it is.\nThe answer to your question is:\nThe answer to your question is:\n"
     "The answer to your question is:\n", "Here it is.\nThe answer to your question is:\n"),
    ("Use git config to set it [1]. " * 3 + "x", "Use git config to set it [1]. "),
    ("Done [1]" + "[1]" * 12, "Done [1]"),
])
def test_a_looping_text_is_cut_after_its_first_copy(text, kept):
    assert text[:find_repetition(text)] == kept


@pytest.mark.parametrize("text", [
    "Use `git config --global user.email \"you@example.com\"` [1]. Then set your name the "
    "same way with `git config --global user.name` [1].",
    "| a | b |\n|---|---|\n| 1 | 2 |\n================================",
    "- `ls` lists files [1]\n- `ls -F` marks folders [1]\n- `ls -a` shows hidden ones [2]",
])
def test_ordinary_answers_are_not_loops(text):
    assert find_repetition(text) is None


def test_citation_check_names_the_problem():
    assert cited_numbers("see [2], [1, 3] and [2][4]") == [2, 1, 3, 4]
    assert cited_numbers("`data[0]` is first [1]\n```\nx[7]\n```") == [1]  # code is no citation
    assert check_citations("Use .gitignore [1].", {1, 2}).valid
    none = check_citations("Use .gitignore.", {1, 2})
    assert not none.valid and none.reason == "no_citation"
    bad = check_citations("Use .gitignore [1][7].", {1, 2})
    assert bad.reason == "invalid_citation" and bad.invalid == [7] and bad.cited == [1]
    assert check_citations("  ", {1}).reason == "empty"


def test_extractive_units_split_prose_and_code():
    text = ("Git reads a file called `.gitignore`. It lists [patterns](https://x.org) to "
            "skip:\n\n```bash\n$ nano .gitignore\n```\n\n::::: callout\n\n## Heading\n"
            "- a bullet point that is long enough")
    got = [(u.text, u.code) for u in units(text)]
    assert got == [("Git reads a file called `.gitignore`.", False),
                   ("It lists patterns to skip:", False), ("$ nano .gitignore", True),
                   ("a bullet point that is long enough", False)]


def _results(*texts):
    hits = [SearchResult(i, t, 1.0, f"s{i}.md", f"/c/s{i}.md", f"S{i}", "", 1, 2, None, None)
            for i, t in enumerate(texts)]
    return SearchResults("q", "hybrid", hits, True)


def test_focused_windows_keep_a_command_with_the_sentence_introducing_it():
    results = _results(
        "Git can ignore files. Ignored files are listed by status.\n\nIgnored files are "
        "skipped by git add. To add an ignored file anyway, use the `-f` option:\n\n"
        "```bash\n$ git add -f a.dat\n```\n\nThe file is now tracked.",
        "Files and folders are often ignored in a project. Many files are ignored.")
    windows = focused("how do I add an ignored file with -f?", results)
    quoted = [" ".join(u.text for u in w) for w in windows]
    assert any("use the `-f` option:" in q and "$ git add -f a.dat" in q for q in quoted)
    assert all(w[0].n == w[-1].n for w in windows)  # a window stays inside one passage
    assert sum(len(q.split()) for q in quoted) <= 180
    assert focused("how do I add an ignored file?", results, only={2})[0][0].n == 2


def test_text_that_two_passages_repeat_is_quoted_once():
    output = ("```output\nOn branch main\nChanges not staged for commit:\n"
              "  (use \"git add <file>...\" to update what will be committed)\n"
              "  (use \"git restore <file>...\" to discard changes in working directory)\n"
              "  modified:   guacamole.md\n```")
    results = _results(
        "To throw away changes to a file, restore it:\n\n```bash\n$ git restore guacamole.md"
        "\n```\n\nGit status first shows the changed file:\n\n" + output,
        "Git status shows the changed file:\n\n" + output + "\n\nThen it is restored.",
        "Restoring a file throws away your changes since the last commit.")
    windows = focused("how do I throw away my changes to a changed file?", results)
    shown = [u.text for w in windows for u in w]
    assert "$ git restore guacamole.md" in shown
    assert shown.count("On branch main") == 1  # the same output, quoted once
    assert len(windows) >= 2  # the room goes to other text instead

def test_a_window_never_ends_on_a_sentence_introducing_code_it_leaves_out():
    # the sentences that match the question fill the window's word limit up to a short
    # sentence introducing the command (as in git-novice's "Places to create repositories")
    explained = ("To undo a git init run by mistake in a subfolder, remove the nested "
                 "repository that it made. Its history sits in a hidden directory. That "
                 "directory holds every commit, branch and setting that was recorded there, so "
                 "check twice which one you delete before you press Enter, because a deleted "
                 "history cannot be brought back later by anyone. ")
    command = "$ rm -rf desserts/.git  # from the recipes directory, the outer repository"
    results = _results(explained + "Run this command:\n\n```bash\n" + command +
                       "\n```\n\nBe careful: this cannot be reversed.")
    words = len(explained.split()) + 3
    assert words <= WINDOW_WORDS < words + len(command.split())  # the command is past the limit
    windows = focused("I ran git init inside a subfolder by mistake, how do I undo the "
                      "nested repository?", results, most=1)
    quoted = " ".join(u.text for u in windows[0])
    assert quoted.startswith("To undo a git init") and "Run this command:" in quoted
    assert command in quoted


def test_focused_windows_follow_the_meaning_of_the_question_when_its_words_are_elsewhere(
        minilm):
    results = _results(
        "The pwd command prints the full path of the working directory, the folder you are "
        "in now.", "Folders can be renamed.", "A folder can be copied.", "Folders hold files.")
    question = "Which folder am I in right now?"
    assert focused(question, results, most=1)[0][0].n != 1  # by words alone: a short "folder"
    qv = minilm.embed_query(question)
    results.relevance = lambda texts: [float(x) for x in minilm.embed(list(texts)) @ qv]
    assert focused(question, results, most=1)[0][0].n == 1  # fused with the meaning: pwd


def test_search_results_carry_the_query_relevance_of_any_text(course_collection):
    results = course_collection.search(QUESTION, k=3)
    near, far = results.relevance([results.results[0].text, "Bananas are yellow fruit."])
    assert near > far and results.relevance([]) == []
    assert "relevance" not in results.to_dict()


def test_extractive_answer_quotes_the_matching_sentences_with_valid_numbers(course_collection):
    results = course_collection.search(QUESTION, k=4)
    text = extractive_answer(QUESTION, results)
    assert text.startswith(EXTRACTIVE_LEAD)
    numbers = cited_numbers(text)
    assert numbers and set(numbers) <= {c.n for c in results.citations()}
    assert ".gitignore" in text
    for line in text.splitlines()[2:]:  # every quote starts a piece of the passage it cites
        n = cited_numbers(line)[-1]
        assert re.match(r"- [“`].*[”`] \[\d+\]$", line)
        passage = " ".join(results.results[n - 1].text.replace("`", "").split())
        prose = re.findall(r"“([^”]+)”", line)
        code = re.findall(r"`([^`]+)`", re.sub(r"“[^”]+”", "", line))
        assert prose or code
        for quote in prose + code:
            assert " ".join(quote.replace("`", "").split())[:30] in passage


def test_a_looping_model_is_stopped_early_and_replaced(course_collection):
    model = ScriptedModel(["The answer ", "to your ", "question is:\n"], cycle=True)
    streamed = []
    answer = ask(course_collection, QUESTION, model=model, k=3, on_text=streamed.append)
    assert model.closed and model.read < 20  # stopped at the third copy, not at max_tokens
    check = answer.citation_check
    assert check.reason == "repetition" and check.action == "extractive" and not check.valid
    assert check.model_text == "".join(streamed)
    assert answer.text.startswith(EXTRACTIVE_LEAD) and answer.cited
    assert "repeating itself" in answer.note and "quoted sentences" in answer.note
    assert find_repetition(answer.text) is None
    md = answer.to_markdown()
    assert answer.note in md and "**Sources**" in md


@pytest.mark.parametrize(("pieces", "reason", "words"), [
    (["Just add a file.", ""], "no_citation", "cited no source"),
    (["Add the names to .gitignore [9]."], "invalid_citation", "do not exist ([9])"),
    ([], "empty", "no answer"),
])
def test_an_answer_without_valid_citations_is_replaced_with_a_note(course_collection, pieces,
                                                                     reason, words):
    answer = ask(course_collection, QUESTION, model=ScriptedModel(pieces), k=3)
    assert answer.citation_check.reason == reason and words in answer.note
    assert answer.cited and set(cited_numbers(answer.text)) <= {1, 2, 3}
    data = answer.to_dict()
    assert data["citation_check"]["action"] == "extractive"
    assert data["citation_check"]["model_text"] == "".join(pieces)


def test_an_answer_citing_valid_sources_is_kept(course_collection):
    model = ScriptedModel(["List them in ", "a `.gitignore` file [1]."])
    answer = ask(course_collection, QUESTION, model=model, k=3)
    model_text = "List them in a `.gitignore` file [1]."
    check = answer.citation_check
    assert check.valid and check.action == "kept" and check.model_text == model_text
    # shown: the model's answer, then the focused excerpt of the passages (cited, valid)
    assert answer.text.startswith(model_text + "\n\n" + EVIDENCE_LEAD) and answer.note is None
    evidence = answer.text[len(model_text):]
    assert ".gitignore" in evidence and cited_numbers(evidence)
    assert set(cited_numbers(answer.text)) <= {c.n for c in answer.citations}


def test_an_answer_that_shares_no_words_with_its_source_is_replaced(course_collection):
    model = ScriptedModel(["Bananas are yellow tropical fruit, ", "rich in potassium [1]."])
    answer = ask(course_collection, QUESTION, model=model, k=3)
    check = answer.citation_check
    assert not check.valid and check.reason == "unsupported" and check.action == "extractive"
    assert check.cited == [1] and "Bananas" in check.model_text and "Bananas" not in answer.text
    assert answer.text.startswith(EXTRACTIVE_LEAD) and "too few words" in answer.note


def test_support_is_the_share_of_content_words_in_the_sources():
    assert support("Use git add -f to add it [1].", ["Use `git add -f` to force."]) == 1.0
    assert support("Bananas are yellow [2].", ["Git tracks files."]) == 0.0
    assert support("[1]", ["anything"]) == 1.0


def test_without_passage_text_the_check_falls_back_to_the_passages(course_collection):
    results = course_collection.search(QUESTION, k=2)
    for r in results.results:
        r.text = "```\n```"
    from jupyter_llm.retrieval.answer import Answer

    answer = checked(Answer(QUESTION, "No citation here.", results.citations(),
                            results=results))
    assert answer.citation_check.action == "passages" and "passages are shown" in answer.note
    assert answer.cited == [1, 2]


class _Spec:
    def __init__(self, backend, default_options):
        self.backend, self.default_options = backend, default_options


def test_sampling_defaults_fill_what_the_registry_leaves_out():
    local = ScriptedModel([])
    local.spec = _Spec("llama_cpp", {"max_tokens": 400})
    assert sampling_defaults(local) == {"repeat_penalty": 1.1}
    remote = ScriptedModel([])
    remote.spec = _Spec("openai", {})
    assert sampling_defaults(remote) == {"max_tokens": 256}  # an API may reject the penalty
    assert sampling_defaults(ScriptedModel([])) == {"max_tokens": 256}


def test_caller_options_override_the_sampling_defaults(course_collection):
    model = ScriptedModel(["See [1]."])
    model.spec = _Spec("llama_cpp", {})
    ask(course_collection, QUESTION, model=model, k=2, max_tokens=32, temperature=0)
    assert model.options == {"max_tokens": 32, "repeat_penalty": 1.1, "temperature": 0}
