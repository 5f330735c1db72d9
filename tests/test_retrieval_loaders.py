"""Loaders and chunking: structure (headings, cells, pages), line ranges, token sizes, walking."""

from __future__ import annotations

import pytest

from jupyter_llm.retrieval.chunking import ChunkerSettings, chunk_sections
from jupyter_llm.retrieval.loaders import LoaderError, load_file, walk
from tests.fixtures.retrieval import write_notebook, write_pdf

MARKDOWN = """---
title: Loops
teaching: 10
---

Intro text before any heading.

## For loops

A for loop repeats code.

```python
# not a heading
for x in range(3):
    print(x)
```

::::::::: challenge

### Sum a list

Add the numbers.

:::::::::
"""


def words(n: int) -> str:
    return " ".join(f"word{i}" for i in range(n))


def test_markdown_sections_follow_headings_with_line_ranges(tmp_path):
    path = tmp_path / "loops.md"
    path.write_text(MARKDOWN)
    doc = load_file(path)
    assert doc.title == "Loops"
    assert [s.heading for s in doc.sections] == [
        ["Loops"], ["Loops", "For loops"], ["Loops", "For loops", "Sum a list"]]
    lines = MARKDOWN.splitlines()
    for s in doc.sections:
        first = s.text.splitlines()[0]
        assert lines[s.start_line - 1].strip().endswith(first.strip().rstrip(":").lower()) or \
            first in lines[s.start_line - 1]
    assert "# not a heading" in doc.sections[1].text  # a comment in a code fence stays text
    assert "Challenge:" in doc.sections[1].text  # fenced-div marker kept as a word


def test_markdown_emphasis_markers_leave_the_stored_text_but_code_keeps_every_character(
        tmp_path):
    path = tmp_path / "tdd.md"
    path.write_text("# Testing\n\n"
                    "Writing the tests *before* writing the function is **test-driven**.\n"
                    "Use `rm -r` _with great caution_; `**kwargs` and `*.txt` stay.\n"
                    "file_name_here, __init__, 2 * 3 * 4 and ls *.txt *.csv stay too.\n\n"
                    "```python\nprint(2 * 3)  # *not* emphasis in code\n```\n")
    doc = load_file(path)
    text = doc.sections[0].text
    assert "Writing the tests before writing the function is test-driven." in text
    assert "Use `rm -r` with great caution; `**kwargs` and `*.txt` stay." in text
    assert "file_name_here, __init__, 2 * 3 * 4 and ls *.txt *.csv stay too." in text
    assert "print(2 * 3)  # *not* emphasis in code" in text
    assert doc.sections[0].start_line == 1 and doc.sections[0].end_line == 9


def test_notebook_cells_keep_index_heading_and_text_outputs(tmp_path):
    doc = load_file(write_notebook(tmp_path / "loops.ipynb"))
    assert doc.kind == "notebook" and doc.title == "Loops in Python"
    code = [s for s in doc.sections if s.cell_index == 1][0]
    assert "print(word)" in code.text and "lead" in code.text and code.heading == [
        "Loops in Python"]
    assert any("ZeroDivisionError: division by zero" in s.text for s in doc.sections)
    result = [s for s in doc.sections if s.cell_index == 3][0]
    assert result.heading == ["Loops in Python", "Counting"] and "Output:\n3" in result.text


def test_pdf_pages_are_sections_and_a_corrupt_pdf_is_a_loader_error(tmp_path):
    doc = load_file(write_pdf(tmp_path / "a.pdf", ["Photosynthesis makes sugar.", "Page two."],
                              title="Biology"))
    assert doc.title == "Biology"
    assert [s.page for s in doc.sections] == [1, 2]
    assert "Photosynthesis" in doc.sections[0].text
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"%PDF-1.4\n this is not really a pdf \x00\x01")
    with pytest.raises(LoaderError, match="bad.pdf"):
        load_file(bad)


def test_html_rst_python_and_text_loaders(tmp_path):
    html = tmp_path / "p.html"
    html.write_text("<html><head><title>Page</title><script>x=1</script></head><body>"
                    "<h1>Shell</h1><p>The shell runs commands.</p><h2>Pipes</h2>"
                    "<p>A pipe joins commands.</p></body></html>")
    doc = load_file(html)
    assert doc.title == "Page"
    assert doc.sections[-1].heading == ["Shell", "Pipes"] and "pipe joins" in doc.sections[-1].text
    assert not any("x=1" in s.text for s in doc.sections)
    rst = tmp_path / "r.rst"
    rst.write_text("Guide\n=====\n\nIntro.\n\nInstall\n-------\n\nRun pip.\n")
    doc = load_file(rst)
    assert [s.heading for s in doc.sections] == [["Guide"], ["Guide", "Install"]]
    assert doc.sections[1].start_line == 6
    py = tmp_path / "m.py"
    py.write_text('"""Tools."""\nimport os\n\n\ndef add(a, b):\n    return a + b\n\n\n'
                  'class Box:\n    pass\n')
    doc = load_file(py)
    heads = {s.heading[0]: (s.start_line, s.end_line) for s in doc.sections}
    assert heads["def add"] == (5, 6) and heads["class Box"] == (9, 10)
    txt = tmp_path / "t.txt"
    txt.write_text("line one\nline two\n")
    assert load_file(txt).sections[0].end_line == 2
    binary = tmp_path / "b.txt"
    binary.write_bytes(b"\xff\xfe\x00\x00garbage")
    with pytest.raises(LoaderError):
        load_file(binary)


def test_walk_skips_hidden_build_and_node_modules_and_honours_globs(tmp_path):
    for rel in ["a.md", "sub/b.ipynb", ".hidden/c.md", "node_modules/d.md", "build/e.md",
                "sub/f.png", "sub/g.txt", "sub/.h.md"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x")
    found = sorted(p.relative_to(tmp_path).as_posix() for p in walk(tmp_path))
    assert found == ["a.md", "sub/b.ipynb", "sub/g.txt"]
    assert [p.name for p in walk(tmp_path, include=["*.md"])] == ["a.md"]
    assert [p.name for p in walk(tmp_path, exclude=["sub"])] == ["a.md"]
    assert [p.name for p in walk(tmp_path, include=["sub/*"], exclude=["*.txt"])] == ["b.ipynb"]


def test_chunks_respect_token_size_overlap_and_line_ranges(tmp_path, minilm):
    body = "\n".join(f"Sentence number {i} talks about loops and lists." for i in range(120))
    path = tmp_path / "long.md"
    path.write_text(f"# Long\n\n{body}\n\n## Short\n\nTiny.\n")
    doc = load_file(path)
    settings = ChunkerSettings(chunk_size=64, chunk_overlap=16)
    chunks = chunk_sections(doc.sections, settings, minilm.count_tokens)
    lines = path.read_text().splitlines()
    long_chunks = [c for c in chunks if c.heading == ["Long"]]
    assert len(long_chunks) > 5
    for c in chunks:
        assert c.n_tokens <= 64
        assert c.text.splitlines()[0] in lines[c.start_line - 1]
        assert c.text.splitlines()[-1] in lines[c.end_line - 1]
    # consecutive chunks overlap: the next starts before the previous ends
    assert any(b.start_line <= a.end_line for a, b in zip(long_chunks, long_chunks[1:]))
    assert chunks[-1].heading == ["Long", "Short"] and chunks[-1].text.endswith("Tiny.")


def test_small_notebook_cells_under_one_heading_merge(tmp_path, minilm):
    doc = load_file(write_notebook(tmp_path / "n.ipynb"))
    chunks = chunk_sections(doc.sections, ChunkerSettings(), minilm.count_tokens)
    assert [c.heading for c in chunks] == [["Loops in Python"], ["Loops in Python", "Counting"]]
    assert chunks[0].cell_index == 0 and "print(word)" in chunks[0].text
    assert chunks[1].cell_index == 2 and "ZeroDivisionError" in chunks[1].text


def test_chunker_settings_validate():
    with pytest.raises(ValueError):
        ChunkerSettings(chunk_size=50, chunk_overlap=50)
    assert words(3) == "word0 word1 word2"


def test_a_double_star_glob_also_matches_files_at_the_top(tmp_path):
    (tmp_path / "sub" / "deep").mkdir(parents=True)
    for rel in ("top.md", "sub/a.md", "sub/deep/b.txt", "sub/skip.bin"):
        (tmp_path / rel).write_text("text")
    found = sorted(p.relative_to(tmp_path).as_posix() for p in walk(tmp_path, ["**/*"]))
    assert found == ["sub/a.md", "sub/deep/b.txt", "top.md"]
    assert [p.name for p in walk(tmp_path, ["**/*.md"])] == ["top.md", "a.md"]
    assert [p.name for p in walk(tmp_path, ["**/*"], ["**/deep/*"])] == ["top.md", "a.md"]
