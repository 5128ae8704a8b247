"""A ticker source for the Python project, for scripts/bench-fleet-upstream.

Upstream has no long-running dev source (StaticSource emits a list and
ends), so the side-by-side density benchmark adds this one: one packet every
interval_sec, forever, like schnitzel's TickerSource.
"""

from __future__ import annotations

import time
from typing import Any, Iterable

from schnitzel_stream.packet import StreamPacket


class TickerSource:
    OUTPUT_KINDS = {"*"}

    def __init__(self, *, node_id: str | None = None, config: dict[str, Any] | None = None) -> None:
        self._node_id = str(node_id or "ticker")
        cfg = dict(config or {})
        self._interval = float(cfg.get("interval_sec", 0.1))
        self._source_id = str(cfg.get("source_id", self._node_id))

    def run(self) -> Iterable[StreamPacket]:
        seq = 0
        next_at = time.monotonic()
        while True:
            seq += 1
            yield StreamPacket.new(kind="tick", source_id=self._source_id, payload={"seq": seq})
            next_at += self._interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def close(self) -> None:
        return
