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
    assert err.to_dict() == {"error": {"type": "busy", "message": "queue full", "details": None}}
    assert err.status == 503 and err.retry_after == 3


def test_unknown_model_suggests_close_ids():
    err = UnknownModel("qwen2.5-0.5b-instrct", ["qwen2.5-0.5b-instruct", "llama-3.2-1b"])
    assert "qwen2.5-0.5b-instruct" in err.message
    assert "jupyter llm models" in err.message
    assert err.status == 404


def test_missing_dependency_says_how_to_install():
    err = errors.MissingDependency("llama-cpp-python", "Running local GGUF models", "llama")
    assert "pip install 'jupyter-llm[llama]'" in err.message
