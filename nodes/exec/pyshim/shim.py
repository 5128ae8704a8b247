"""schnitzel's Python shim: runs an upstream-style node class unchanged.

    python3 shim.py --check module:Class   import check; one JSON line on stdout
    python3 shim.py --run module:Class     speak docs/plugin-protocol.md

The class follows upstream's contract (schnitzel-stream-platform,
runtime/inproc.py): it is built with node_id= and config= when its
constructor names them (or takes **kwargs), else with no arguments (also
after a TypeError); a node's process(packet) returns an iterable of
StreamPacket (one packet or None are accepted too); a source's run()
returns an iterable of StreamPacket; close() is called at the end.
When schnitzel_stream is not installed, a stand-in schnitzel_stream.packet
with the same StreamPacket is provided, so `from schnitzel_stream.packet
import StreamPacket` works. Standard library only.
"""

import dataclasses
import importlib
import inspect
import json
import os
import sys
import threading
import traceback
import types
import uuid
from datetime import datetime, timezone
from typing import Any

PROTOCOL = 1


def _stub_packet_module():
    """Install schnitzel_stream.packet (upstream's StreamPacket) if absent."""
    try:
        from schnitzel_stream.packet import StreamPacket  # noqa: F401

        return
    except ImportError:
        pass

    @dataclasses.dataclass(frozen=True)
    class StreamPacket:
        packet_id: str
        ts: str
        kind: str
        source_id: str
        payload: Any
        meta: dict = dataclasses.field(default_factory=dict)

        @classmethod
        def new(cls, *, kind, source_id, payload, ts=None, meta=None):
            return cls(
                packet_id=str(uuid.uuid4()),
                ts=ts or datetime.now(timezone.utc).isoformat(),
                kind=str(kind),
                source_id=str(source_id),
                payload=payload,
                meta=dict(meta or {}),
            )

    pkg = sys.modules.get("schnitzel_stream")
    if pkg is None:
        pkg = types.ModuleType("schnitzel_stream")
        pkg.__path__ = []  # a package, so submodule imports resolve here
        sys.modules["schnitzel_stream"] = pkg
    mod = types.ModuleType("schnitzel_stream.packet")
    StreamPacket.__module__ = mod.__name__
    mod.StreamPacket = StreamPacket
    sys.modules[mod.__name__] = mod
    pkg.packet = mod


def _load(target):
    module, sep, name = target.partition(":")
    if not sep or not module or not name:
        raise ValueError("plugin path must be in form 'module:Name'")
    mod = importlib.import_module(module)
    if not hasattr(mod, name):
        raise ImportError(f"plugin target not found: {target}")
    cls = getattr(mod, name)
    if not inspect.isclass(cls):
        raise TypeError(f"node plugin must resolve to a class (Phase 1): {target}")
    return cls


def _kinds(cls, attr):
    v = getattr(cls, attr, None)
    if v is None:
        return ["*"]
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, (list, tuple, set, frozenset)):
        raise TypeError(f"{attr} must be a string or list of strings")
    out = []
    for k in v:
        if not isinstance(k, str):
            raise TypeError(f"{attr} must contain strings only")
        out.append(k.strip())
    if not out or any(k in ("", "*") for k in out):
        return ["*"]
    return sorted(set(out))


def _describe(target):
    cls = _load(target)
    has_run = callable(getattr(cls, "run", None))
    has_process = callable(getattr(cls, "process", None))
    if not has_run and not has_process:
        raise TypeError(f"node plugin must implement process() or run(): {target}")
    return {
        "ok": True,
        "role": "node" if has_process else "source",
        "input_kinds": _kinds(cls, "INPUT_KINDS"),
        "output_kinds": _kinds(cls, "OUTPUT_KINDS"),
        "doc": (inspect.getdoc(cls) or "").split("\n", 1)[0][:200],
    }


def _user_frames(exc):
    """The traceback's frames in the user's code (not the shim's, not
    importlib's), innermost last: where an import-time error came from."""
    out = []
    for f in traceback.extract_tb(exc.__traceback__):
        if f.filename == __file__ or f.filename.startswith("<frozen") or f.name == "import_module":
            continue
        out.append(f"{f.filename}:{f.lineno} in {f.name}")
    return out[-3:]


def _error_text(exc):
    return f"{type(exc).__name__}: {exc}"


def _instantiate(cls, node_id, config):
    """upstream's _instantiate_node: keywords when named, else no args."""
    kwargs = {}
    try:
        params = inspect.signature(cls).parameters
        var_kw = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values())
        if var_kw or "node_id" in params:
            kwargs["node_id"] = node_id
        if var_kw or "config" in params:
            kwargs["config"] = dict(config)
    except (TypeError, ValueError):
        pass
    try:
        return cls(**kwargs)
    except TypeError:
        return cls()


_out_lock = threading.Lock()


def _send(frame):
    line = json.dumps(frame, ensure_ascii=False, separators=(",", ":"))
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def _to_packet(d):
    from schnitzel_stream.packet import StreamPacket

    meta = d.get("meta")
    return StreamPacket(
        packet_id=d.get("packet_id") or str(uuid.uuid4()),
        ts=d.get("ts") or datetime.now(timezone.utc).isoformat(),
        kind=d.get("kind", "raw"),
        source_id=d.get("source_id", ""),
        payload=d.get("payload"),
        meta=dict(meta) if isinstance(meta, dict) else {},
    )


def _from_packet(p, target):
    try:
        return {
            "packet_id": p.packet_id,
            "ts": p.ts,
            "kind": p.kind,
            "source_id": p.source_id,
            "payload": p.payload,
            "meta": dict(p.meta or {}),
        }
    except AttributeError:
        raise TypeError(f"node output must be StreamPacket: {target}") from None


def _outputs(result, target):
    """process() results: an iterable of packets; one packet or None too."""
    if result is None:
        return []
    if hasattr(result, "packet_id") and hasattr(result, "payload"):
        return [_from_packet(result, target)]
    return [_from_packet(p, target) for p in result]


def _checked(frame):
    """Encode now, so that a payload that is not JSON fails its packet with
    a clear message instead of killing the shim mid-line."""
    try:
        return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"{e} (payloads must be JSON: frames and bytes cross the plugin protocol by reference only)"
        ) from None


def _write_line(line):
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def _run(target):
    _send({"type": "hello", "protocol": PROTOCOL, "spec": {"name": target, "shim": "python"}})
    obj = None
    is_source = False
    stdin = sys.stdin
    for line in stdin:
        msg = json.loads(line)
        t = msg.get("type")
        if t == "config":
            try:
                cls = _load(target)
                obj = _instantiate(cls, msg.get("node_id"), msg.get("config") or {})
                is_source = not callable(getattr(obj, "process", None)) and callable(getattr(obj, "run", None))
            except Exception as e:
                traceback.print_exc()
                _send({"type": "error", "message": _error_text(e)})
                return 1
            _send({"type": "ready"})
            if is_source:
                return _run_source(obj, target, stdin)
        elif t == "packet":
            fid = msg.get("id")
            try:
                outs = _outputs(obj.process(_to_packet(msg.get("packet") or {})), target)
                line = _checked({"type": "result", "id": fid, "packets": outs})
            except Exception as e:
                traceback.print_exc()
                _send({"type": "error", "id": fid, "message": _error_text(e)})
                continue
            _write_line(line)
        elif t == "close":
            break
    _close(obj)
    return 0


def _close(obj):
    close = getattr(obj, "close", None)
    if callable(close):
        try:
            close()
        except Exception:
            traceback.print_exc()


def _run_source(obj, target, stdin):
    # A close (or EOF) may come while run() is blocked writing into a full
    # pipe: a reader thread closes the node and exits the process.
    def watch():
        for line in stdin:
            try:
                if json.loads(line).get("type") == "close":
                    break
            except ValueError:
                pass
        _close(obj)
        sys.stdout.flush()
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()
    try:
        items = obj.run()
        if items is None:
            raise TypeError(f"source node run() must return Iterable[StreamPacket]: {target}")
        for p in items:
            _write_line(_checked({"type": "emit", "packet": _from_packet(p, target)}))
    except Exception as e:
        traceback.print_exc()
        _send({"type": "error", "message": _error_text(e)})
        _close(obj)
        return 1
    _send({"type": "end"})
    # Wait for our close: the runtime closes sources after the graph drains.
    threading.Event().wait()
    return 0


def main(argv):
    if len(argv) != 3 or argv[1] not in ("--check", "--run"):
        print("usage: shim.py --check|--run module:Class", file=sys.stderr)
        return 2
    _stub_packet_module()
    if argv[1] == "--check":
        try:
            info = _describe(argv[2])
        except BaseException as e:  # SystemExit at import is a failure too
            print(json.dumps({"ok": False, "error": _error_text(e), "traceback": _user_frames(e)}))
            return 1
        print(json.dumps(info))
        return 0
    return _run(argv[2])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
