"""Wall time of the whole pipeline, stage by stage: runs `dvc repro` (arguments passed on, e.g. --force for every
stage) and times each stage from the line DVC prints when it starts one to the next such line (or the end).

    DVC_NO_ANALYTICS=1 python benchmarks/pipeline_time.py --force [--out times.json]

The default profile's budget is 90 minutes on an idle 2-core CPU; run nothing else beside it (two cores shared
with another job make every torch stage much slower). The per-stage figures also go to --out as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

STAGE_START = re.compile(r"^Running stage '([^']+)'")


def stage_times(lines_with_times: list[tuple[float, str]], end: float) -> dict[str, float]:
    """Seconds per stage from (time, line) pairs of DVC's output: a stage lasts until the next one starts."""
    starts = [(t, m.group(1)) for t, line in lines_with_times if (m := STAGE_START.match(line))]
    bounds = [t for t, _ in starts[1:]] + [end]
    return {name: round(stop - t, 1) for (t, name), stop in zip(starts, bounds)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="write the per-stage seconds here as JSON")
    args, dvc_args = ap.parse_known_args()
    t0 = time.time()
    seen: list[tuple[float, str]] = []
    venv_dvc = Path(sys.executable).with_name("dvc")  # the dvc installed beside this python, else the one on PATH
    dvc = str(venv_dvc) if venv_dvc.exists() else "dvc"
    with subprocess.Popen([dvc, "repro", *dvc_args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,  # unbuffered:
                          text=True, bufsize=1, env={**os.environ, "PYTHONUNBUFFERED": "1"}) as proc:
        try:
            for line in proc.stdout:
                seen.append((time.time(), line.rstrip("\n")))
                sys.stdout.write(line)
        except KeyboardInterrupt:  # dvc got the same Ctrl-C (one process group): let it stop its stage cleanly
            proc.wait()
            print("interrupted: no total measured (dvc stopped; rerun `dvc repro` to finish)", file=sys.stderr)
            return 130
    end = time.time()
    times = stage_times(seen, end)
    result = {"rc": proc.returncode, "total_s": round(end - t0, 1), "stages_s": times}
    print(f"\n{'stage':40s} {'seconds':>9s}")
    for name, sec in times.items():
        print(f"{name:40s} {sec:9.1f}")
    print(f"{'total (dvc repro ' + ' '.join(dvc_args) + ')':40s} {result['total_s']:9.1f}  rc {proc.returncode}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return proc.returncode


if __name__ == "__main__":
    raise SystemExit(main())
