#!/usr/bin/env python3
"""Reference model adapter for schnitzel's ModelAdapterDetectorNode and
YoloV8DetectorNode (protocol: docs/detector-adapter.md). Python standard
library only, no model: it shows the protocol, not vision.

What it "detects":
  * format bgr24: the bounding box of the clearly red pixels (r > 150,
    g < 100, b < 100), sampled every --step pixels; class_id 0
    "red_object", confidence = share of red samples inside the box.
  * format jpeg (the stdlib cannot decode JPEG): a box over the centre
    half of the frame, class_id 0 "center", confidence 0.5.

Modes:
  reference_adapter.py                 stdin/stdout process adapter (node key: command)
  reference_adapter.py --http 127.0.0.1:8765
                                       HTTP adapter (node key: url: http://127.0.0.1:8765/)

Protocol in one paragraph: per frame schnitzel writes one JSON header line
{"id", "width", "height", "format", "bytes", "frame_idx", "source_id", "ts",
"params"} and then exactly `bytes` raw image bytes; the adapter answers with
one JSON line {"id": <same id>, "detections": [...]} or {"id", "error"}.
Anything else on stdout is a protocol error: log to stderr.
"""

import argparse
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def detect(header, image, step):
    width, height, fmt = int(header["width"]), int(header["height"]), header["format"]
    if fmt == "bgr24":
        if len(image) != width * height * 3:
            raise ValueError("bgr24 image has %d bytes, expected %d" % (len(image), width * height * 3))
        return red_region(image, width, height, step)
    if fmt == "jpeg":
        return [{"class_id": 0, "class_name": "center", "confidence": 0.5,
                 "bbox": {"x1": width // 4, "y1": height // 4, "x2": width * 3 // 4, "y2": height * 3 // 4}}]
    raise ValueError("unsupported format %r" % fmt)


def red_region(image, width, height, step):
    x1, y1, x2, y2 = width, height, -1, -1
    red = 0
    row_bytes = width * 3
    for y in range(0, height, step):
        row = image[y * row_bytes:(y + 1) * row_bytes]
        for x in range(0, width, step):
            i = 3 * x
            b, g, r = row[i], row[i + 1], row[i + 2]
            if r > 150 and g < 100 and b < 100:
                red += 1
                if x < x1:
                    x1 = x
                if x > x2:
                    x2 = x
                if y < y1:
                    y1 = y
                if y > y2:
                    y2 = y
    if red == 0:
        return []
    # The box spans the sampled red pixels; widen by one step (sampling
    # misses up to step-1 pixels at each edge), clipped to the frame.
    x2, y2 = min(width, x2 + step), min(height, y2 + step)
    samples = max(1, ((x2 - x1 + step - 1) // step) * ((y2 - y1 + step - 1) // step))
    return [{"class_id": 0, "class_name": "red_object", "confidence": round(min(1.0, red / samples), 4),
             "bbox": {"x1": x1, "y1": y1, "x2": x2, "y2": y2}}]


# Seconds each answer takes at least (--delay-ms): stands in for a model's
# inference time when trying backpressure and memory bounds.
DELAY = 0.0


def answer(header, image, step):
    if DELAY > 0:
        time.sleep(DELAY)
    try:
        return {"id": header.get("id"), "detections": detect(header, image, step)}
    except Exception as exc:  # one bad frame must not kill the adapter
        return {"id": header.get("id"), "error": "%s: %s" % (type(exc).__name__, exc)}


def serve_stdio(step):
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        line = stdin.readline()
        if not line:
            return  # stdin closed: schnitzel is shutting down
        header = json.loads(line)
        image = stdin.read(int(header["bytes"]))
        if len(image) != int(header["bytes"]):
            return  # truncated input: schnitzel went away
        stdout.write(json.dumps(answer(header, image, step)).encode() + b"\n")
        stdout.flush()


def serve_http(addr, step):
    host, _, port = addr.rpartition(":")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            try:
                header = json.loads(self.headers.get("X-Schnitzel-Request") or "{}")
                image = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            except ValueError as exc:
                self.send_error(400, str(exc))
                return
            body = json.dumps(answer(header, image, step)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *args):
            sys.stderr.write("reference_adapter: " + (fmt % args) + "\n")

    server = ThreadingHTTPServer((host or "127.0.0.1", int(port)), Handler)
    sys.stderr.write("reference_adapter: listening on http://%s:%s/\n" % server.server_address[:2])
    server.serve_forever()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--step", type=int, default=4, help="sample every Nth pixel in x and y (default 4)")
    ap.add_argument("--http", metavar="HOST:PORT", help="serve HTTP instead of stdin/stdout")
    ap.add_argument("--delay-ms", type=float, default=0, help="take at least this long per frame, like a model (default 0)")
    args = ap.parse_args()
    step = max(1, args.step)
    global DELAY
    DELAY = max(0.0, args.delay_ms) / 1000
    if args.http:
        serve_http(args.http, step)
    else:
        serve_stdio(step)


if __name__ == "__main__":
    main()
