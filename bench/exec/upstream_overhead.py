"""Per-packet cost of an upstream node class in upstream's own runtime, to
set beside schnitzel's plugin round trip (nodes/exec BenchmarkRoundTrip).

Runs StaticSource -> BurstNode(N) -> X -> Identity(sink) in upstream's
InProcGraphRunner with X = mynodes:Upper and X = dev:Identity, alternating,
and prints the median per-packet difference: what Upper itself costs
in-process in Python. Needs a checkout of the Python project at HEAD:

    PYTHONPATH=<upstream>/src:examples/plugins/upstream \
    ALLOWED_PLUGIN_PREFIXES=schnitzel_stream.,mynodes \
    python3 bench/exec/upstream_overhead.py 100000
"""
import statistics
import sys
import time

from schnitzel_stream.graph.model import EdgeSpec, NodeSpec
from schnitzel_stream.runtime.inproc import InProcGraphRunner


def graph(n, plugin, config):
    nodes = [
        NodeSpec("src", "schnitzel_stream.nodes.dev:StaticSource", "source",
                 {"packets": [{"kind": "demo", "source_id": "bench", "payload": {"text": "hello", "value": 1}}]}),
        NodeSpec("burst", "schnitzel_stream.nodes.dev:BurstNode", "node", {"count": n}),
        NodeSpec("x", plugin, "node", config),
        NodeSpec("out", "schnitzel_stream.nodes.dev:Identity", "sink", {}),
    ]
    edges = [EdgeSpec("src", "burst"), EdgeSpec("burst", "x"), EdgeSpec("x", "out")]
    return nodes, edges


def wall(n, plugin, config):
    nodes, edges = graph(n, plugin, config)
    t0 = time.perf_counter()
    InProcGraphRunner().run(nodes=nodes, edges=edges)
    return time.perf_counter() - t0


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
    pairs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    wall(1000, "mynodes:Upper", {})  # warm-up
    diffs, uppers = [], []
    for _ in range(pairs):
        u = wall(n, "mynodes:Upper", {})
        i = wall(n, "schnitzel_stream.nodes.dev:Identity", {})
        uppers.append(u)
        diffs.append(u - i)
    print(f"upstream in-process, N={n}: graph with Upper {statistics.median(uppers) / n * 1e6:.2f} us/packet, "
          f"Upper's own cost {statistics.median(diffs) / n * 1e6:.2f} us/packet (median of {pairs} pairs)")


if __name__ == "__main__":
    main()
