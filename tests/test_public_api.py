"""The public surface is what we mean it to be, and importing it stays cheap."""

import subprocess
import sys

import jupyter_llm


def test_exported_names_are_the_intended_ones():
    assert set(jupyter_llm.__all__) == {
        "__version__", "connect", "get_model", "Model", "Response", "Options", "ModelSpec",
        "Registry", "errors"}
    for name in jupyter_llm.__all__:
        assert getattr(jupyter_llm, name) is not None


def test_unknown_attribute_is_an_attribute_error():
    try:
        jupyter_llm.no_such_thing  # noqa: B018
    except AttributeError as e:
        assert "no_such_thing" in str(e)
    else:  # pragma: no cover
        raise AssertionError("expected AttributeError")


def test_import_loads_no_heavy_dependency():
    code = ("import sys, jupyter_llm; heavy = ['pydantic', 'httpx', 'llama_cpp', 'torch', "
            "'openai', 'tornado', 'langchain_core']; print([m for m in heavy if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_extension_entry_points():
    points = jupyter_llm._jupyter_server_extension_points()
    assert points[0]["module"] == "jupyter_llm.server.app"
    assert jupyter_llm._jupyter_labextension_paths() == [{"src": "labextension", "dest": "jupyter-llm"}]
