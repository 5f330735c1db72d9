"""The prompt library: built-in educator prompts, user and notebook folders, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from jupyter_llm import paths
from jupyter_llm.errors import InvalidRequest, NotFound, RegistryError
from jupyter_llm.prompts import PromptLibrary, PromptTemplate, load_prompt_file

EDUCATOR_PROMPTS = {"socratic-tutor", "explain-code", "quiz", "mark-rubric", "explain-level"}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_builtin_library_ships_the_educator_prompts_without_problems(tmp_path):
    library = PromptLibrary.load(tmp_path)
    assert EDUCATOR_PROMPTS <= {t.name for t in library}
    assert library.problems == []
    assert all(t.origin == "builtin" and t.description for t in library)


def test_socratic_tutor_asks_for_hints_not_answers(tmp_path):
    system, user = PromptLibrary.load(tmp_path).get("socratic-tutor").render(
        "Why does my loop never end?", {"subject": "Python"})
    assert "Never give the full answer" in system
    assert "student of Python" in system and "beginner" in system
    assert user == "Why does my loop never end?"


def test_rubric_marking_requires_the_rubric_and_names_it(tmp_path):
    template = PromptLibrary.load(tmp_path).get("mark-rubric")
    assert template.required() == ["rubric"]
    with pytest.raises(InvalidRequest) as e:
        template.render("x = 1")
    assert "rubric" in e.value.message and "--var rubric=" in e.value.message
    system, user = template.render("x = 1", {"rubric": "1 point: assigns x"})
    assert "1 point: assigns x" in user and user.endswith("x = 1")


def test_notebook_prompts_override_user_prompts_which_override_builtins(tmp_path):
    write(paths.data_dir() / "prompts" / "quiz.yaml",
          "name: quiz\ndescription: mine\ntemplate: 'Q: {{input}}'\n")
    write(paths.data_dir() / "prompts" / "haiku.yml",
          "name: haiku\ntemplate: 'A haiku about {{input}}'\n")
    write(tmp_path / "prompts" / "haiku.yaml",
          "name: haiku\ndescription: course version\nvariables: {season: winter}\n"
          "template: 'A {{season}} haiku about {{input}}'\n")
    library = PromptLibrary.load(tmp_path)
    assert library.get("quiz").origin == "user" and library.get("quiz").description == "mine"
    haiku = library.get("haiku")
    assert haiku.origin == "notebook" and haiku.source == str(tmp_path / "prompts" / "haiku.yaml")
    assert haiku.render("snow") == (None, "A winter haiku about snow")
    assert haiku.render("snow", {"season": "spring"})[1] == "A spring haiku about snow"


def test_a_template_without_input_placeholder_appends_the_text():
    template = PromptTemplate(name="t", template="Summarise.")
    assert template.render("Some text")[1] == "Summarise.\n\nSome text"
    assert template.render("")[1] == "Summarise."


def test_validation_errors_name_the_file_and_the_field(tmp_path):
    bad = write(tmp_path / "prompts" / "broken.yaml",
                "name: broken\ntemplate: 'hi'\noptions: [1, 2]\n")
    write(tmp_path / "prompts" / "typo.yaml",
          "name: typo\ntemplate: 'Explain {{topik}}'\nvariables: {topic: x}\n")
    write(tmp_path / "prompts" / "extra.yaml", "name: extra\ntemplat: 'hi'\n")
    write(tmp_path / "prompts" / "notyaml.yaml", "name: [unclosed\n")
    library = PromptLibrary.load(tmp_path)
    by_file = {Path(p.path).stem: p for p in library.problems}
    assert set(by_file) == {"broken", "typo", "extra", "notyaml"}
    assert by_file["broken"].field == "options" and "dictionary" in by_file["broken"].message
    assert "{{topik}}" in by_file["typo"].message and "variables" in by_file["typo"].message
    assert by_file["extra"].field == "templat" and "not a known field" in by_file["extra"].message
    assert "YAML" in by_file["notyaml"].message
    assert EDUCATOR_PROMPTS <= {t.name for t in library}  # the good prompts still load
    with pytest.raises(RegistryError) as e:
        library.get("broken")
    assert str(bad) in e.value.message and "'options'" in e.value.message
    with pytest.raises(RegistryError) as e:
        load_prompt_file(bad)
    assert e.value.details == {"path": str(bad), "field": "options"}


def test_unknown_prompt_suggests_close_names(tmp_path):
    with pytest.raises(NotFound) as e:
        PromptLibrary.load(tmp_path).get("socratic")
    assert "'socratic-tutor'" in e.value.message and "List the prompts" in e.value.message
    assert e.value.details["suggestions"] == ["socratic-tutor"]
    assert e.value.details["action"] == "list_templates"  # each face words its own command


def test_a_file_may_hold_a_list_of_prompts_and_variables_have_shorthand_defaults(tmp_path):
    write(tmp_path / "prompts" / "set.yaml",
          "prompts:\n  - name: a\n    variables: {n: 3}\n    template: '{{n}} x {{input}}'\n"
          "    tags: [conversational]\n    options: {temperature: 0.1}\n"
          "  - name: b\n    system: 'Be brief.'\n")
    library = PromptLibrary.load(tmp_path)
    assert library.get("a").render("y") == (None, "3 x y")
    assert library.get("a").tags == ["CONVERSATIONAL"]
    assert library.get("a").options == {"temperature": 0.1}
    assert library.get("b").render("hello") == ("Be brief.", "hello")
    summary = {s["name"]: s for s in library.summaries()}["a"]
    assert summary["variables"] == {"n": "3"} and summary["origin"] == "notebook"
