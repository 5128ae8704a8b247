"""Generate upstream_vectors.json: random frame sequences run through
upstream's IOUTracker (src/ai/vision/trackers/tracker_iou.py@0ff8387).

    PYTHONPATH=<upstream checkout>/src python3 gen_vectors.py > upstream_vectors.json

Deterministic (fixed seed). Each case: tracker settings, frames of
detections (bbox null = no box; track_id preset or null), and the
track_id of every detection after update (null = none assigned).
"""
import copy
import json
import random

from ai.vision.trackers.tracker_iou import IOUTracker

rng = random.Random(20260214)


def rand_box(w=320, h=240, small=False):
    bw = rng.randint(0 if small else 4, 30 if small else 120)
    bh = rng.randint(0 if small else 4, 30 if small else 120)
    x1 = rng.randint(-10, w)
    y1 = rng.randint(-10, h)
    return {"x1": x1, "y1": y1, "x2": x1 + bw, "y2": y1 + bh}


def moved(b, step, floats=False):
    r = (lambda: rng.uniform(-step, step)) if floats else (lambda: rng.randint(-step, step))
    dx, dy, g = r(), r(), r()
    return {"x1": b["x1"] + dx, "y1": b["y1"] + dy, "x2": b["x2"] + dx + g, "y2": b["y2"] + dy + g}


def case(name, n_frames, n_objects, step, p_miss, p_new, p_nobox, p_preset, small=False, floats=False):
    objs = [rand_box(small=small) for _ in range(n_objects)]
    frames = []
    for _ in range(n_frames):
        objs = [moved(b, step, floats) for b in objs]
        if rng.random() < p_new:
            objs.append(rand_box(small=small))
        if objs and rng.random() < p_new / 2:
            objs.pop(rng.randrange(len(objs)))
        dets = []
        for b in objs:
            if rng.random() < p_miss:
                continue
            d = {"object_type": rng.choice(["PERSON", "PERSON", "VEHICLE"]), "bbox": dict(b), "track_id": None}
            if rng.random() < p_nobox:
                d["bbox"] = None
            if rng.random() < p_preset:
                d["track_id"] = rng.randint(100, 200)
            dets.append(d)
        if dets and rng.random() < 0.2:  # an exact duplicate box
            dup = copy.deepcopy(rng.choice(dets))
            dets.insert(rng.randrange(len(dets) + 1), dup)
        rng.shuffle(dets)
        frames.append(dets)
    iou = rng.choice([0.3, 0.0, 0.1, 0.5, 0.9, 1.0, -0.5, 1.5])
    max_age = rng.choice([30, 1, 2, 3, 0, -4, 5])
    tr = IOUTracker(max_age=max_age, min_hits=rng.choice([1, 3]), iou_thres=iou)
    want = []
    for dets in frames:
        work = copy.deepcopy(dets)
        tr.update(work)
        want.append([d.get("track_id") for d in work])
    return {"name": name, "iou": iou, "max_age": max_age, "frames": frames, "want": want}


cases = []
for i in range(6):
    cases.append(case("slow%d" % i, 25, rng.randint(1, 6), 3, 0.1, 0.1, 0.0, 0.0))
for i in range(6):
    cases.append(case("fast%d" % i, 25, rng.randint(1, 8), 25, 0.3, 0.3, 0.05, 0.1))
for i in range(3):
    cases.append(case("crowd%d" % i, 20, rng.randint(8, 20), 10, 0.2, 0.3, 0.05, 0.05, small=True))
for i in range(3):
    cases.append(case("gaps%d" % i, 40, rng.randint(1, 4), 2, 0.6, 0.05, 0.0, 0.0))
for i in range(2):
    cases.append(case("float%d" % i, 20, rng.randint(2, 6), 8, 0.2, 0.2, 0.0, 0.0, floats=True))
print(json.dumps({"generator": "gen_vectors.py", "upstream": "src/ai/vision/trackers/tracker_iou.py@0ff8387",
                  "cases": cases}, separators=(",", ":")))
