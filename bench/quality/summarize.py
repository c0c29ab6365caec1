"""Per-dataset table of docs/QUALITY.md from the JSON lines in bench/results/quality-*.jsonl.

    python summarize.py FILE.jsonl...
Groups lines by (implementation, schedule) and prints, per dataset, the mean sliced W2 over seeds
0, 1, 2 (the issue's criterion) with the number of seeds found. A line whose switches are all
flowmatch's (torch_reference.py with every --X ours) is the torch twin of flowmatch's CPU reference
trainer; a line of examples/cpu_quality.rs (`"backend": "cpu-reference"`, bench/quality/run.sh cpu)
is that trainer itself, as the code is now; a line
with "command": "train" is `flowmatch train` (bench/quality/run.sh flowmatch).
"""
import json
import statistics
import sys

import datasets

OURS = {"loss": "sum", "adam": "ours", "init": "ours", "pool": "ours", "rng": "ours", "sampler": "ours"}


def label(d):
    if d.get("command") == "train":
        return f"flowmatch CLI ({'lavapipe' if d.get('device_type') == 'cpu' else d.get('adapter', '?')}), {d.get('schedule', 'constant')}"
    if d.get("backend") == "cpu-reference":
        return f"flowmatch CPU reference (cpu_quality), {d.get('schedule', 'constant')}"
    if all(d.get(k) == v for k, v in OURS.items()):
        return f"flowmatch CPU reference, {d.get('schedule', 'constant')}"
    return f"PyTorch, {d.get('schedule', 'constant')}"


def main():
    rows = {}
    for path in sys.argv[1:]:
        for line in open(path):
            d = json.loads(line)
            if "floor" in d:
                rows.setdefault("floor", {})[d["dataset"]] = {s: d["floor"] for s in (0, 1, 2)}
            elif d.get("seed") in (0, 1, 2) and d.get("steps", 2000) == 2000 and d.get("width", 64) == 64:
                rows.setdefault(label(d), {}).setdefault(d["dataset"], {})[d["seed"]] = d["sw2"]
    names = sorted(rows, key=lambda n: (n != "floor", n))
    print("| dataset | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for ds in datasets.NAMES:
        cells = []
        for n in names:
            v = rows[n].get(ds, {})
            cells.append(f"{statistics.mean(v.values()):.4f}" + ("" if len(v) == 3 else f" ({len(v)} seeds)") if v else "—")
        print(f"| {ds} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
