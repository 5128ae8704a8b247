"""A ProcessSource test plugin: emits config["n"] packets, then end; with
config["crash_at"] it exits after that many instead (the first start only,
when config["once"] names a file that marks it)."""
import json
import os
import sys


def send(frame):
    sys.stdout.write(json.dumps(frame) + "\n")
    sys.stdout.flush()


send({"type": "hello", "protocol": 1})
cfg = json.loads(sys.stdin.readline())["config"]
send({"type": "ready"})
crash_at = cfg.get("crash_at")
if crash_at is not None and os.path.exists(cfg["once"]):
    crash_at = None
for i in range(cfg["n"]):
    if crash_at is not None and i == crash_at:
        open(cfg["once"], "w").close()
        sys.exit(5)
    send({"type": "emit", "packet": {"kind": "count", "payload": {"i": i}}})
send({"type": "end"})
for line in sys.stdin:
    if json.loads(line)["type"] == "close":
        break
