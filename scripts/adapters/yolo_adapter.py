#!/usr/bin/env python3
"""YOLOv8 model adapter (ultralytics) for schnitzel's YoloV8DetectorNode and
ModelAdapterDetectorNode. Protocol: docs/detector-adapter.md.

Needs: pip install ultralytics (brings numpy, opencv-python, torch) and a model
file, e.g. models/yolov8n.pt. Nothing is downloaded by schnitzel.

The model and its options come from the request's "params" (YoloV8DetectorNode
sends model_path, conf, iou, max_det, classes, device from its config), or from
the command line when run for ModelAdapterDetectorNode:

  command: [python3, scripts/adapters/yolo_adapter.py, --model, models/yolov8n.pt]

Send frames as bgr24 (input_format: bgr24) to skip a JPEG round trip when the
adapter runs on the same machine; jpeg is decoded with cv2.imdecode.
"""

import argparse
import json
import sys


def log(msg):
    # stdout carries answers only: everything else goes to stderr.
    sys.stderr.write("yolo_adapter: %s\n" % msg)
    sys.stderr.flush()


class Detector:
    def __init__(self, defaults):
        import numpy  # noqa: F401  (fail early, with a clear message, when missing)
        self.defaults = defaults
        self.models = {}

    def model(self, path):
        m = self.models.get(path)
        if m is None:
            from ultralytics import YOLO
            log("loading %s" % path)
            m = self.models[path] = YOLO(path)
        return m

    def image(self, header, data):
        import numpy as np
        w, h, fmt = int(header["width"]), int(header["height"]), header["format"]
        if fmt == "bgr24":
            return np.frombuffer(data, dtype=np.uint8).reshape((h, w, 3))
        if fmt == "jpeg":
            import cv2
            img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
            if img is None:
                raise ValueError("JPEG did not decode")
            return img
        raise ValueError("unsupported format %r" % fmt)

    def detect(self, header, data):
        p = dict(self.defaults)
        p.update({k: v for k, v in (header.get("params") or {}).items() if v not in (None, "")})
        kwargs = {"verbose": False, "conf": float(p.get("conf", 0.25)), "iou": float(p.get("iou", 0.45)),
                  "max_det": int(p.get("max_det", 100))}
        if p.get("classes"):
            kwargs["classes"] = [int(c) for c in p["classes"]]
        if p.get("device"):
            kwargs["device"] = str(p["device"])
        model = self.model(p.get("model_path") or "models/yolov8n.pt")
        results = model.predict(self.image(header, data), **kwargs)
        out = []
        if not results:
            return out
        names = getattr(results[0], "names", None) or getattr(model, "names", {}) or {}
        for box in results[0].boxes:
            x1, y1, x2, y2 = (float(v) for v in box.xyxy[0].tolist())
            cls = int(box.cls[0].item())
            det = {"bbox": {"x1": x1, "y1": y1, "x2": x2, "y2": y2},
                   "confidence": float(box.conf[0].item()),
                   "class_id": cls, "class_name": str(names.get(cls, cls))}
            if getattr(box, "id", None) is not None:  # model.track() results carry track ids
                det["track_id"] = int(box.id[0].item())
            out.append(det)
        return out


def main():
    ap = argparse.ArgumentParser(description="YOLOv8 adapter for schnitzel (stdin/stdout protocol)")
    ap.add_argument("--model", dest="model_path", help="model file when the request has no params.model_path")
    ap.add_argument("--conf", type=float)
    ap.add_argument("--iou", type=float)
    ap.add_argument("--max-det", dest="max_det", type=int)
    ap.add_argument("--device")
    args = ap.parse_args()
    defaults = {k: v for k, v in vars(args).items() if v is not None}
    detector = Detector(defaults)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        line = stdin.readline()
        if not line:
            return
        header = json.loads(line)
        data = stdin.read(int(header["bytes"]))
        if len(data) != int(header["bytes"]):
            return
        try:
            answer = {"id": header["id"], "detections": detector.detect(header, data)}
        except Exception as exc:  # report per frame; a broken model shows as adapter_errors_total
            answer = {"id": header["id"], "error": "%s: %s" % (type(exc).__name__, exc)}
        stdout.write(json.dumps(answer).encode() + b"\n")
        stdout.flush()


if __name__ == "__main__":
    main()
