"""Cohort throughput: one infer.py, N parts in parallel, and the Beam pipeline.

Segments the same directory of volumes (made here: wide training-style
phantoms of ``--shape``) with the trained models given, four ways, each into
its own output directory:

- ``plain``: one ``tools/infer.py`` process;
- ``parts``: ``--num_parts`` ``infer.py --part_id=K`` processes at once;
- ``beam1`` / ``beam2``: ``tools/infer_beam.py`` on Beam's DirectRunner with 1
  and 2 worker processes (multi-processing mode).

For each: wall time, volumes per minute, and the peak resident memory of
every process of the run (sampled from /proc every 0.2 s), and whether the
label maps equal those of the plain run byte for byte. The per-volume
network time of the plain run (from its log) gives a projection for N GPU
workers, written beside the figures.

Usage:
  python benchmarks/bench_batch_infer.py --liver_model=demo_work/models/liver \
      --tumor_model=demo_work/models/tumor --work_dir=/tmp/batch --num_volumes=8
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
    except OSError:
        return ""


def run_measured(commands: list[list[str]], log: Path) -> dict:
    """Runs ``commands`` at once; wall time and peak RSS per process of their trees."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    start = time.perf_counter()
    with open(log, "w") as out:
        procs = [
            subprocess.Popen(c, stdout=out, stderr=subprocess.STDOUT, env=env) for c in commands
        ]
        peaks: dict[int, tuple[float, str]] = {}
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                for p in procs:
                    for pid in _tree(p.pid):
                        rss = _rss_mb(pid)
                        if rss > peaks.get(pid, (0.0, ""))[0]:
                            peaks[pid] = (rss, peaks.get(pid, (0, ""))[1] or _cmdline(pid))
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        codes = [p.wait() for p in procs]
        stop.set()
        sampler.join()
    seconds = time.perf_counter() - start
    workers = sorted(
        (round(mb) for mb, cmd in peaks.values() if mb > 200 and "python" in cmd), reverse=True
    )
    return {"seconds": round(seconds, 1), "exit_codes": codes, "peak_rss_mb": workers}


def _label_maps(directory: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes()
        for p in directory.glob("segmentation-*.nii*")
        if "_probability" not in p.name
    }


def _network_seconds(log: Path) -> list[float]:
    """Per-volume liver_net + tumor_net seconds from an infer.py log."""
    found = []
    for line in log.read_text().splitlines():
        m = re.search(r"liver_net ([\d.]+)s .*tumor_net ([\d.]+)s", line)
        t = re.search(r"total ([\d.]+)s", line)
        if m and t:
            found.append((float(m.group(1)) + float(m.group(2)), float(t.group(1))))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--liver_model", required=True)
    parser.add_argument("--tumor_model", required=True)
    parser.add_argument("--work_dir", required=True)
    parser.add_argument("--num_volumes", type=int, default=8)
    parser.add_argument("--shape", default="192,192,48")
    parser.add_argument("--num_parts", type=int, default=2)
    parser.add_argument("--ways", default="plain,parts,beam1,beam2")
    args = parser.parse_args()

    from liverseg.phantoms.training import write_phantoms

    work = Path(args.work_dir)
    data = work / "volumes"
    if not (data / ".done").exists():
        data.mkdir(parents=True, exist_ok=True)
        shape = tuple(int(v) for v in args.shape.split(","))
        write_phantoms(data, args.num_volumes, shape, seed=321, style="wide")
        for label_map in data.glob("segmentation-*"):
            label_map.unlink()
        (data / ".done").write_text("")
    models = [f"--liver_model={args.liver_model}", f"--tumor_model={args.tumor_model}"]
    infer = [sys.executable, str(ROOT / "tools" / "infer.py"), f"--input_dir={data}"]
    beam = [sys.executable, str(ROOT / "tools" / "infer_beam.py"), f"--input_dir={data}"]
    runs = {
        "plain": [[*infer, f"--output_dir={work / 'plain'}", *models]],
        "parts": [
            [
                *infer,
                f"--output_dir={work / 'parts'}",
                *models,
                f"--num_parts={args.num_parts}",
                f"--part_id={k}",
            ]
            for k in range(args.num_parts)
        ],
    }
    for n in (1, 2):
        runs[f"beam{n}"] = [
            [
                *beam,
                f"--output_dir={work / f'beam{n}'}",
                *models,
                "--",
                "--runner=DirectRunner",
                f"--direct_num_workers={n}",
                "--direct_running_mode=multi_processing",
            ]
        ]
    results = {}
    n_volumes = len(list(data.glob("volume-*")))
    for name in args.ways.split(","):
        out = work / name
        if out.exists():
            import shutil

            shutil.rmtree(out)
        r = run_measured(runs[name], work / f"{name}.log")
        r["volumes_per_min"] = round(n_volumes / r["seconds"] * 60, 2)
        results[name] = r
        print(name, json.dumps(r), flush=True)
    if "plain" in results:
        reference = _label_maps(work / "plain")
        for name in results:
            results[name]["identical_to_plain"] = _label_maps(work / name) == reference
        per_volume = _network_seconds(work / "plain.log")
        if per_volume:
            net = sum(n for n, _ in per_volume) / len(per_volume)
            total = sum(t for _, t in per_volume) / len(per_volume)
            results["per_volume_s"] = {"networks": round(net, 2), "cascade": round(total, 2)}
    figures = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        "volumes": n_volumes,
        "shape": args.shape,
        "results": results,
    }
    (work / "batch_infer.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
