"""Models downloaded from a URL (when allowed) stay usable after the host restarts."""

import pytest

from jupyter_llm.config import Settings
from jupyter_llm.errors import Forbidden
from jupyter_llm.host import ModelHost


def test_url_download_is_refused_by_default(http_server, tiny_gguf):
    http_server.serve("/m.gguf", file=tiny_gguf)
    host = ModelHost(Settings.from_env(), use_workers=False)
    with pytest.raises(Forbidden, match="allow_url_downloads"):
        host.downloads.download_url(http_server.url("/m.gguf"))


def test_pull_of_a_url_is_refused_by_default_and_installs_when_allowed(http_server, tiny_gguf):
    http_server.serve("/m.gguf", file=tiny_gguf)
    host = ModelHost(Settings.from_env(), use_workers=False)
    with pytest.raises(Forbidden, match="JUPYTER_LLM_ALLOW_URL_DOWNLOADS"):
        host.pull(http_server.url("/m.gguf"))
    allowed = ModelHost(Settings.from_env(allow_url_downloads=True), use_workers=False)
    manifest = allowed.pull(http_server.url("/m.gguf"))
    assert manifest["id"] == "url:m.gguf"
    assert allowed.chat([{"role": "user", "content": "hi"}], "url:m.gguf", max_tokens=2).text()
    allowed.close()


def test_url_installed_model_survives_a_restart(http_server, tiny_gguf):
    http_server.serve("/m.gguf", file=tiny_gguf)
    host = ModelHost(Settings.from_env(), use_workers=False)
    host.downloads.download_url(http_server.url("/m.gguf"), allow_url_downloads=True)
    restarted = ModelHost(Settings.from_env(), use_workers=False)
    url_ids = [m["id"] for m in restarted.models() if m["id"].startswith("url:")]
    assert len(url_ids) == 1
    model = next(m for m in restarted.models() if m["id"] == url_ids[0])
    assert model["state"] == "installed"
    text = restarted.chat([{"role": "user", "content": "hi"}], url_ids[0], max_tokens=3).text()
    assert text
    restarted.close()
