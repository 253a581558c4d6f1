"""Is `edgecv bench`'s recommendation stable, and is a default bench quick?

    python benchmarks/experiments/recommendation_stability.py RUN... [--repeats 5] \
        [--threads 1] [--json PATH]

Runs the default ``edgecv bench RUN`` (all targets, Keras included, ``--threads`` as given)
``--repeats`` times per run directory, the runs taking turns, each as a fresh process the way a
user runs it. Records each time the recommended (artifact, threads), the gap between the fastest
row within budget and the next fastest one that is a different deployment, and the wall time.

Goal (issue 12): whenever the best two differ by more than 10% (median gap over the repeats), the
recommendation is the same in every repeat; a default bench of a run directory takes under a
minute.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from _common import RESULTS_DIR

GAP = 0.10
WALL_S = 60.0


def best_two_gap(report: dict, target: str = "cpu") -> float | None:
    """p50 of the second-fastest row within budget / the fastest one's, minus 1 (the rows and
    the budget the recommendation used)."""
    from edgecv.benchmarks.recommend import within_budget

    choice = next((c for c in report["recommendations"] if c["target"] == target), None)
    if choice is None:
        return None
    measured = [r for r in report["rows"] if r["target"] == target and r["status"] == "ok"
                and r.get("batch") in (1, None)]
    eligible = sorted(r["p50_ms"] for r in within_budget(measured, choice["max_drop_pp"])[0])
    return None if len(eligible) < 2 else eligible[1] / eligible[0] - 1


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", default="1")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "recommendation_stability.json")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, received {args.repeats}.")
    from edgecv.benchmarks.machine import machine_info

    trials: dict[str, list[dict]] = {str(run): [] for run in args.runs}
    with tempfile.TemporaryDirectory() as workdir:
        for repeat in range(args.repeats):
            for run in args.runs:
                out = Path(workdir) / f"{run.name}_{repeat}.json"
                command = [sys.executable, "-m", "edgecv", "bench", str(run), "--threads",
                           args.threads, "--json", str(out)]
                start = time.perf_counter()
                done = subprocess.run(command, capture_output=True, text=True)
                wall = time.perf_counter() - start
                if done.returncode != 0:
                    raise SystemExit(f"edgecv bench {run} failed: {done.stderr.strip()[-400:]}")
                report = json.loads(out.read_text())
                choice = next(c for c in report["recommendations"] if c["target"] == "cpu")
                gap = best_two_gap(report)
                trials[str(run)].append({
                    "wall_s": round(wall, 1), "recommended": f"{choice['artifact']} x{choice['threads']}",
                    "p50_ms": choice["p50_ms"], "p50_ci_ms": choice["p50_ci_ms"],
                    "tied_with": choice["tied_with"],
                    "best_two_gap": None if gap is None else round(gap, 4),
                    "load_warning": any("load average" in w for w in report["warnings"])})
                print(f"{run.name} #{repeat + 1}: {trials[str(run)][-1]['recommended']} "
                      f"gap {trials[str(run)][-1]['best_two_gap']} in {wall:.1f} s", flush=True)
    summary = []
    for run, found in trials.items():
        picks = Counter(t["recommended"] for t in found)
        gaps = sorted(t["best_two_gap"] for t in found if t["best_two_gap"] is not None)
        median_gap = gaps[len(gaps) // 2] if gaps else None
        stable = picks.most_common(1)[0][1] == len(found)
        clear = median_gap is not None and median_gap > GAP
        summary.append({"run": run, "picks": dict(picks), "median_best_two_gap": median_gap,
                        "same_every_time": stable,
                        "stability_goal": "met" if stable else ("missed" if clear else
                                                                "n/a: best two within 10%"),
                        "max_wall_s": max(t["wall_s"] for t in found),
                        "wall_goal": "met" if max(t["wall_s"] for t in found) < WALL_S else "missed",
                        "trials": found})
    record = {"command": " ".join(["python benchmarks/experiments/recommendation_stability.py",
                                   *map(str, args.runs), "--repeats", str(args.repeats),
                                   "--threads", args.threads]),
              "goal": f"same recommendation in every repeat whenever the best two differ by more "
                      f"than {GAP:.0%}; default bench under {WALL_S:.0f} s",
              "machine": machine_info(), "runs": summary}
    args.json.write_text(json.dumps(record, indent=2) + "\n")
    for row in summary:
        print(f"{Path(row['run']).name}: {row['picks']} median gap {row['median_best_two_gap']} "
              f"stability {row['stability_goal']}, max wall {row['max_wall_s']} s ({row['wall_goal']})")
    return record


if __name__ == "__main__":
    main()
