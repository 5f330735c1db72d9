"""Human readings of sizes and times shared by the CLI and the magics."""

from __future__ import annotations

from jupyter_llm.display import human_bytes, human_when, ps_rows


def test_human_when_reads_like_a_person_says_it():
    now = 1_000_000.0
    assert human_when(now + 240, now) == "in 4 min"
    assert human_when(now - 12, now) == "12 s ago"
    assert human_when(now + 0.2, now) == "just now"
    assert human_when(now + 7200, now) == "in 2 h"
    assert human_when(now - 3 * 86400, now) == "3 days ago"
    assert human_when(None, now) == "never"


def test_ps_rows_turn_epochs_and_byte_counts_into_words():
    now = 1_000_000.0
    row = {"id": "m", "pid": 42, "memory_bytes": 1_234_000_000, "estimated_bytes": 98_000_000,
           "kv_cache_bytes": None, "last_used": now - 30, "loaded_at": now - 600,
           "expires_at": now + 270, "keep_alive": 300.0, "queue_depth": 0,
           "prefix_cache": {"hits": 2, "misses": None}}
    shown = ps_rows([row], now)[0]
    assert shown == {"id": "m", "pid": "42", "memory": "1.2 GB", "estimated": "98.0 MB",
                     "kv_cache": "-", "last_used": "30 s ago", "loaded": "10 min ago",
                     "expires": "in 4 min", "keep_alive": "300 s", "queue_depth": "0",
                     "prefix_cache": "hits=2"}
    forever = ps_rows([{**row, "expires_at": None, "keep_alive": None}], now)[0]
    assert forever["expires"] == "never" and forever["keep_alive"] == "forever"
    busy = ps_rows([{**row, "expires_at": None}], now)[0]
    assert busy["expires"] == "not while busy"
    assert human_bytes(1_200_000_000) == "1.2 GB"
