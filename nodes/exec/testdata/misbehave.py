"""A ProcessNode test plugin that does what each packet's payload says.

payload {"do": X}: echo (answer the packet), raise (an error frame),
crash (exit 3), hang (never answer), garbage (a line that is not JSON),
huge (a 2 MiB line), wrongid (answer another id), grandchild (start a
sleeping grandchild, write its pid to payload["pidfile"], then answer),
many (answer n copies). config {"refuse": true} refuses to start, {"refuse_restart": true}
refuses every start after the first;
config {"slow_hello": s} sleeps s before hello. On start it appends a
line to config["starts"] (a file), so tests can count (re)starts.
"""
import json
import os
import subprocess
import sys
import time


def send(frame):
    sys.stdout.write(json.dumps(frame) + "\n")
    sys.stdout.flush()


cfg_env = os.environ.get("MISBEHAVE_SLOW_HELLO")
if cfg_env:
    time.sleep(float(cfg_env))
send({"type": "hello", "protocol": int(os.environ.get("MISBEHAVE_PROTOCOL", "1")), "spec": {"name": "misbehave"}})
cfg = {}
for line in sys.stdin:
    msg = json.loads(line)
    t = msg["type"]
    if t == "config":
        cfg = msg.get("config") or {}
        if cfg.get("starts"):
            if cfg.get("refuse_restart") and os.path.exists(cfg["starts"]):
                send({"type": "error", "message": "refusing to restart"})
                sys.exit(1)
            with open(cfg["starts"], "a") as f:
                f.write("start\n")
        if cfg.get("refuse"):
            send({"type": "error", "message": "refusing: bad config"})
            sys.exit(1)
        print("misbehave ready for", msg.get("node_id"), file=sys.stderr, flush=True)
        send({"type": "ready"})
    elif t == "packet":
        pkt = msg["packet"]
        pl = pkt.get("payload") or {}
        do = pl.get("do", "echo") if isinstance(pl, dict) else "echo"
        if do == "echo":
            send({"type": "result", "id": msg["id"], "packets": [pkt]})
        elif do == "raise":
            send({"type": "error", "id": msg["id"], "message": "ValueError: asked to raise"})
        elif do == "crash":
            print("Traceback: crashing on purpose", file=sys.stderr, flush=True)
            sys.exit(3)
        elif do == "hang":
            time.sleep(3600)
        elif do == "garbage":
            sys.stdout.write("this is not json\n")
            sys.stdout.flush()
        elif do == "huge":
            sys.stdout.write('{"type":"result","id":%d,"x":"%s"}\n' % (msg["id"], "x" * (2 << 20)))
            sys.stdout.flush()
        elif do == "wrongid":
            send({"type": "result", "id": msg["id"] + 7, "packets": []})
        elif do == "grandchild":
            gc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
            with open(pl["pidfile"], "w") as f:
                f.write(str(gc.pid))
            send({"type": "result", "id": msg["id"], "packets": []})
        elif do == "many":
            send({"type": "result", "id": msg["id"], "packets": [{"payload": {"i": i}} for i in range(pl["n"])]})
    elif t == "close":
        sys.exit(0)
