"""A terminal progress bar for downloads and ingests (stderr, redrawn in place)."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

__all__ = ["ProgressBar", "human_bytes"]


def human_bytes(n: float | None) -> str:
    """Format a byte count as ``12.3 MB``."""
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


class ProgressBar:
    """Draws ``label [#####.....] 45% 12.3 MB/27.0 MB 5.1 MB/s ETA 3s``."""

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self._last = 0.0
        self._drawn = False

    def __call__(self, event: Any) -> None:
        """Draw one progress event (a dict or an object with ``to_dict``)."""
        data = event.to_dict() if hasattr(event, "to_dict") else dict(event)
        done, total = data.get("done_bytes", 0) or 0, data.get("total_bytes")
        status = data.get("status", "")
        now = time.monotonic()
        final = status in ("done", "error", "cancelled")
        if not final and now - self._last < 0.1:
            return
        self._last = now
        if total:
            frac = min(1.0, done / total)
            bar = "#" * int(frac * self.width) + "." * (self.width - int(frac * self.width))
            text = f"{self.label} [{bar}] {frac * 100:5.1f}% {human_bytes(done)}/{human_bytes(total)}"
        else:
            text = f"{self.label} {human_bytes(done)}"
        rate, eta = data.get("rate_bytes_per_s"), data.get("eta_s")
        if rate:
            text += f" {human_bytes(rate)}/s"
        if eta is not None and not final:
            text += f" ETA {eta:.0f}s"
        if status and status not in ("downloading",):
            text += f" {status}"
        if self.stream.isatty():
            self.stream.write("\r" + text.ljust(100)[:120])
            if final:
                self.stream.write("\n")
        elif final or not self._drawn:
            self.stream.write(text + "\n")
        self._drawn = True
        self.stream.flush()
