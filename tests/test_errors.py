"""One error hierarchy, one JSON shape, and messages that say what to do next."""

import jupyter_llm.errors as errors
from jupyter_llm.errors import JupyterLLMError, UnknownModel


def test_every_error_has_the_one_json_shape():
    for name in errors.__all__:
        cls = getattr(errors, name)
        if not (isinstance(cls, type) and issubclass(cls, JupyterLLMError)):
            continue
        assert 400 <= cls.status < 600, name
        assert cls.type and cls.type.islower(), name
    err = errors.Busy("queue full", retry_after=3)
    assert err.to_dict() == {"error": {"type": "busy", "message": "queue full", "details": {
        "action": "retry", "retry_after": 3}}}
    assert err.status == 503 and err.retry_after == 3


def test_unknown_model_suggests_close_ids():
    err = UnknownModel.from_id("qwen2.5-0.5b-instrct", ["qwen2.5-0.5b-instruct", "llama-3.2-1b"])
    assert "qwen2.5-0.5b-instruct" in err.message
    assert "jupyter llm" not in err.message  # the next step is data, rendered by each face
    assert err.details == {"model": "qwen2.5-0.5b-instrct", "action": "list_models",
                           "suggestions": ["qwen2.5-0.5b-instruct"]}
    assert err.status == 404


def test_missing_dependency_says_how_to_install():
    err = errors.MissingDependency.from_package("llama-cpp-python", "Running local GGUF models", "llama")
    assert "pip install 'jupyter-llm[llama]'" in err.message


def test_a_hint_is_an_action_and_its_documented_arguments():
    import pytest

    assert errors.hint("pull", model="m") == {"action": "pull", "model": "m"}
    assert errors.hint("set_key", env="K", model="m") == {"action": "set_key", "env": "K",
                                                          "model": "m"}
    with pytest.raises(ValueError, match="takes"):
        errors.hint("pull")
    with pytest.raises(ValueError, match="unknown hint action"):
        errors.hint("fly", model="m")
    details = {"model": "m", "known": [], "action": "pull"}
    assert errors.hint_of(details) == {"action": "pull", "model": "m"}
    assert errors.hint_of({"action": "fly"}) is None and errors.hint_of(None) is None


def test_no_message_of_the_lower_layers_names_a_face_command():
    """Messages say what to do in neutral words; the faces render ``details["action"]``.
    Every string in the code below the faces is checked, except docstrings."""
    import ast
    import re
    from pathlib import Path

    root = Path(errors.__file__).parent
    faces = {"cli", "magics", "widgets", "integrations", "labextension"}
    command = re.compile(r"(?<!`)(`jupyter llm |`%llm |POST llm/api)")
    offenders = []
    for path in root.rglob("*.py"):
        if faces & set(path.relative_to(root).parts) or path.name == "display.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef
                                    | ast.AsyncFunctionDef) and node.body
                      and isinstance(node.body[0], ast.Expr)}
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg in ("description", "help"):
                docstrings.add(id(node.value))  # field and option help, not messages
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    id(node) not in docstrings and command.search(node.value):
                offenders.append(f"{path.relative_to(root)}:{node.lineno}: {node.value[:80]}")
    assert offenders == []


def test_every_error_is_rebuilt_from_its_json_shape_and_from_a_worker_pipe():
    import httpx

    from jupyter_llm.client.remote import error_from_body
    from jupyter_llm.host.protocol import error_from_wire, error_to_wire

    details = {"action": "pull", "model": "m"}  # a structured hint travels as data
    for name in errors.__all__:
        cls = getattr(errors, name)
        if not (isinstance(cls, type) and issubclass(cls, JupyterLLMError)):
            continue
        err = cls(f"{name} happened.", details=details)  # one signature for every class
        over_http = error_from_body(err.to_dict(), cls.status, httpx.Headers({"Retry-After": "7"}))
        over_pipe = error_from_wire(error_to_wire(err), model_id="m")
        for rebuilt in (over_http, over_pipe):
            assert type(rebuilt) is cls and rebuilt.message == err.message
            assert rebuilt.details == details and rebuilt.to_dict() == err.to_dict()
    assert error_from_body(errors.Busy("full").to_dict(), 503,
                           httpx.Headers({"Retry-After": "7"})).retry_after == 7
    assert UnknownModel.from_id("nope").model_id == "nope"
