"""Upstream-style node classes (schnitzel-stream-platform's contract), run
by schnitzel unchanged through its Python shim.

    ALLOWED_PLUGIN_PREFIXES=schnitzel_stream.,mynodes schnitzel --graph examples/plugins/upstream/graph.yaml

The graph names them `plugin: mynodes:Upper`; the module is found on
PYTHONPATH or beside the graph file. Nothing here imports schnitzel's Go
side: StreamPacket is upstream's (a stand-in is provided when the
schnitzel_stream package is not installed).
"""

from typing import Any, Iterable

from schnitzel_stream.packet import StreamPacket


class Counter:
    """Source: emit `count` packets {"n": i} (kind "tick")."""

    OUTPUT_KINDS = {"tick"}

    def __init__(self, *, node_id: str | None = None, config: dict[str, Any] | None = None) -> None:
        self._node_id = str(node_id or "counter")
        self._count = int((config or {}).get("count", 3))

    def run(self) -> Iterable[StreamPacket]:
        for i in range(self._count):
            yield StreamPacket.new(kind="tick", source_id=self._node_id, payload={"n": i, "text": f"tick {i}"})

    def close(self) -> None:
        return


class Upper:
    """Transform: upper-case the string field `field` (default "text")."""

    INPUT_KINDS = {"*"}
    OUTPUT_KINDS = {"*"}

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self._field = str((config or {}).get("field", "text"))

    def process(self, packet: StreamPacket) -> Iterable[StreamPacket]:
        payload = packet.payload
        if isinstance(payload, dict) and isinstance(payload.get(self._field), str):
            payload = dict(payload, **{self._field: payload[self._field].upper()})
        yield StreamPacket(
            packet_id=packet.packet_id, ts=packet.ts, kind=packet.kind,
            source_id=packet.source_id, payload=payload, meta=dict(packet.meta, upper=True),
        )

    def close(self) -> None:
        return


class Collect:
    """Sink: append each packet's payload as a JSON line to `path`, forward nothing."""

    INPUT_KINDS = {"*"}

    def __init__(self, **kwargs: Any) -> None:
        import json

        self._json = json
        self._f = open((kwargs.get("config") or {})["path"], "a", encoding="utf-8")

    def process(self, packet: StreamPacket) -> Iterable[StreamPacket]:
        self._f.write(self._json.dumps(packet.payload, sort_keys=True) + "\n")
        self._f.flush()
        return []

    def close(self) -> None:
        self._f.close()


class Fails:
    """Transform that raises on packets whose payload n is odd (a failing node)."""

    def process(self, packet: StreamPacket) -> Iterable[StreamPacket]:
        if isinstance(packet.payload, dict) and packet.payload.get("n", 0) % 2 == 1:
            raise ValueError(f"odd n: {packet.payload['n']}")
        return [packet]
