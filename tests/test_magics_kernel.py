"""``%%llm`` inside real kernels started by a Jupyter server with the extension: the kernels
use the server's host (RemoteClient), so the model is loaded once, in one worker of the
server, however many kernels prompt it."""

from __future__ import annotations

import json
import os

import psutil

CELL = "%%llm -m tiny --max-tokens 6 --temperature 0\nHello from kernel {n}"
REPORT = (
    "import json, sys, jupyter_llm\n"
    "from jupyter_llm.magics import magics_of\n"
    "r = _\n"
    "print(json.dumps({'client': type(magics_of(get_ipython()).session.client).__name__,\n"
    "                  'host_in_kernel': 'jupyter_llm.host' in sys.modules,\n"
    "                  'llama_in_kernel': 'llama_cpp' in sys.modules,\n"
    "                  'model': r.model_id, 'text': r.text(),\n"
    "                  'tokens': r.usage.completion_tokens}))\n")


async def _run(client, code: str) -> tuple[dict, list[dict]]:
    messages: list[dict] = []
    reply = await client.execute_interactive(code, timeout=120, output_hook=messages.append)
    return reply["content"], messages


async def _prompt_in_a_new_kernel(km, n: int) -> tuple[dict, list[dict]]:
    kernel_id = await km.start_kernel(kernel_name="python3")
    client = km.get_kernel(kernel_id).client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        content, _ = await _run(client, "%load_ext jupyter_llm")
        assert content["status"] == "ok", content
        content, cell_messages = await _run(client, CELL.format(n=n))
        assert content["status"] == "ok", content
        content, messages = await _run(client, REPORT)
        assert content["status"] == "ok", content
        text = "".join(m["content"].get("text", "") for m in messages
                       if m["msg_type"] == "stream")
        return json.loads(text), cell_messages
    finally:
        client.stop_channels()
        await km.shutdown_kernel(kernel_id, now=True)


async def test_kernels_share_the_servers_host_and_the_model_loads_once(
        tiny_registry, jp_serverapp, llm_url, jp_fetch):
    km = jp_serverapp.kernel_manager
    first, messages = await _prompt_in_a_new_kernel(km, 1)
    assert first == {**first, "client": "RemoteClient", "host_in_kernel": False,
                     "llama_in_kernel": False, "model": "tiny-chat", "tokens": 6}
    # the answer streamed into one display, updated in place, then the summary as Out
    shown = [m for m in messages if m["msg_type"] in ("display_data", "update_display_data")]
    assert shown[0]["msg_type"] == "display_data"
    display_id = shown[0]["content"]["transient"]["display_id"]
    assert all(m["content"]["transient"]["display_id"] == display_id for m in shown)
    assert shown[-1]["msg_type"] == "update_display_data"
    assert shown[-1]["content"]["data"]["text/markdown"].startswith(first["text"])
    result = [m for m in messages if m["msg_type"] == "execute_result"]
    assert "text/markdown" not in result[0]["content"]["data"]

    ps = json.loads((await jp_fetch("llm", "api", "ps")).body)["models"]
    assert [p["id"] for p in ps] == ["tiny-chat"]
    worker = ps[0]["pid"]
    assert psutil.Process(worker).ppid() == os.getpid()  # a worker of the server, not a kernel

    second, _ = await _prompt_in_a_new_kernel(km, 2)
    assert second["client"] == "RemoteClient" and second["tokens"] == 6
    ps_after = json.loads((await jp_fetch("llm", "api", "ps")).body)["models"]
    assert [(p["id"], p["pid"], p["loaded_at"]) for p in ps_after] == \
        [("tiny-chat", worker, ps[0]["loaded_at"])]  # loaded once, reused by the second kernel
    history = json.loads((await jp_fetch("llm", "api", "history",
                                         params={"limit": "2"})).body)["entries"]
    assert [e["response"] for e in history] == [second["text"], first["text"]]
