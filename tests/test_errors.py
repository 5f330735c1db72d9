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
    err = UnknownModel.from_id("qwen2.5-0.5b-instrct", ["qwen2.5-0.5b-instruct", "llama-3.2-1b"])
    assert "qwen2.5-0.5b-instruct" in err.message
    assert "jupyter llm models" in err.message
    assert err.status == 404


def test_missing_dependency_says_how_to_install():
    err = errors.MissingDependency.from_package("llama-cpp-python", "Running local GGUF models", "llama")
    assert "pip install 'jupyter-llm[llama]'" in err.message


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
