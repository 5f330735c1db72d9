"""Kernels started by the Jupyter server inherit JUPYTER_LLM_URL/TOKEN and share its host."""

from __future__ import annotations

import json
import os


async def test_the_extension_exports_its_url_and_token(jp_serverapp, llm_url, llm_token):
    assert os.environ["JUPYTER_LLM_URL"] == llm_url
    assert os.environ["JUPYTER_LLM_TOKEN"] == llm_token


async def test_a_kernel_started_by_the_server_prompts_through_it(tiny_registry, jp_serverapp,
                                                                 llm_url, jp_fetch):
    km = jp_serverapp.kernel_manager
    kernel_id = await km.start_kernel(kernel_name="python3")
    client = km.get_kernel(kernel_id).client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        outputs: list[str] = []
        code = (
            "import json, jupyter_llm\n"
            "c = jupyter_llm.connect()\n"
            "r = c.prompt('Hi', 'tiny-chat', max_tokens=5, temperature=0)\n"
            "print(json.dumps({'client': type(c).__name__, 'url': c.url, 'text': r.text()}))\n")
        reply = await client.execute_interactive(
            code, timeout=120,
            output_hook=lambda msg: outputs.append(msg["content"].get("text", "")))
        assert reply["content"]["status"] == "ok", reply["content"]
        result = json.loads("".join(outputs))
        assert result["client"] == "RemoteClient" and result["url"] == llm_url
        r = await jp_fetch("llm", "api", "history", params={"limit": "1"})
        entry = json.loads(r.body)["entries"][0]
        assert entry["response"] == result["text"] and entry["face"] == "api"
    finally:
        client.stop_channels()
        await km.shutdown_kernel(kernel_id, now=True)
