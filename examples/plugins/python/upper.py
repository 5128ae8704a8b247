#!/usr/bin/env python3
"""A ProcessNode plugin speaking docs/plugin-protocol.md directly.

It upper-cases one string field of a map payload (config key "field",
default "message"). Standard library only. Run it with:

    plugin: schnitzel_stream.nodes.exec:ProcessNode
    config:
      command: [python3, examples/plugins/python/upper.py]
      config: {field: message}
"""
import json
import sys


def send(frame):
    sys.stdout.write(json.dumps(frame, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def main():
    send({"type": "hello", "protocol": 1, "spec": {"name": "upper", "role": "node"}})
    field = "message"
    for line in sys.stdin:
        msg = json.loads(line)
        t = msg.get("type")
        if t == "config":
            field = (msg.get("config") or {}).get("field", field)
            print(f"upper: node {msg.get('node_id')} upper-cases {field!r}", file=sys.stderr)
            send({"type": "ready"})
        elif t == "packet":
            pkt = msg["packet"]
            payload = pkt.get("payload")
            if isinstance(payload, dict) and isinstance(payload.get(field), str):
                payload = dict(payload, **{field: payload[field].upper()})
            send({"type": "result", "id": msg["id"], "packets": [dict(pkt, payload=payload)]})
        elif t == "close":
            return


if __name__ == "__main__":
    main()
