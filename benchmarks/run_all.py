"""Run every benchmark and write benchmarks/RESULTS.md.

    python benchmarks/run_all.py [--quick] [--only quality,bm25]

Each benchmark is its own script (``benchmarks/<name>.py``) that prints a markdown table and
writes it to ``benchmarks/out/<name>.md``; this runner runs them one after another (never in
parallel: the timings are ratios measured side by side inside each script, and two scripts
sharing 2 cores would distort them), then stitches the tables together with the date, the
machine and the command lines. ``--quick`` (a smoke pass) writes benchmarks/out/RESULTS-quick.md
instead of RESULTS.md. The exit status is 1 when any script failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["quality", "encoders", "bm25", "qdrant", "hybrid", "muvera", "ingest", "tui_latency"]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{os.cpu_count()} cores ({cpu}){mem}, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    ap.add_argument("--only", default=None, help="comma list of benchmark names")
    ap.add_argument("--collect", action="store_true",
                    help="do not run anything: stitch the tables already in benchmarks/out/")
    args = ap.parse_args(argv)
    names = [n for n in ORDER if (HERE / f"{n}.py").exists()]
    names += sorted(p.stem for p in HERE.glob("*.py")
                    if p.stem not in ORDER and p.stem not in ("run_all", "common")
                    and not p.stem.startswith("_"))
    if args.only:
        names = [n for n in names if n in args.only.split(",")]
    sections = []
    failed: list[str] = []
    for name in names:
        cmd = [sys.executable, str(HERE / f"{name}.py"), *(["--quick"] if args.quick else [])]
        out_file = HERE / "out" / f"{name}.md"
        rel = f"python benchmarks/{name}.py" + (" --quick" if args.quick else "")
        if args.collect:
            if out_file.exists():
                body = out_file.read_text(encoding="utf-8").strip()
                sections.append(f"## {name}\n\n`{rel}` (table from its last run)\n\n{body}\n")
            # extra tables a script wrote under non-default options (out/<name>_<variant>.md)
            for extra in sorted((HERE / "out").glob(f"{name}_*.md")):
                owner = max((p.stem for p in HERE.glob("*.py")
                             if extra.stem == p.stem or extra.stem.startswith(p.stem + "_")),
                            key=len)
                if owner != name:
                    continue  # a longer script name owns it: hybrid_latency_x is not hybrid's
                variant = extra.stem[len(name) + 1:]
                body = extra.read_text(encoding="utf-8").strip()
                sections.append(f"## {name} ({variant})\n\nExtra table from a run with other "
                                f"options (its caption gives the command)\n\n{body}\n")
            continue
        print(f"== {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, text=True, capture_output=True, check=False)
        seconds = time.perf_counter() - t0
        if proc.returncode == 0 and out_file.exists():
            body = out_file.read_text(encoding="utf-8").strip()
        else:
            failed.append(name)
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
            body = "failed:\n\n```\n" + "\n".join(tail) + "\n```"
        print(body, flush=True)
        sections.append(f"## {name}\n\n`{rel}` ({seconds:.0f} s)\n\n{body}\n")
    today = dt.date.today().isoformat()
    header = (f"# trawl benchmark results\n\n{today} on {machine()}.\n"
              f"Reproduce: `python benchmarks/run_all.py{' --quick' if args.quick else ''}` "
              "(after `bash .ci/setup`; datasets from ../shared/datasets).\n"
              "Speed figures are ratios measured side by side within one script run.\n"
              + ("Collected (`--collect`) from each script's last run; each caption gives the "
                 "load and any non-default options of its run.\n" if args.collect else ""))
    # A --quick pass is a smoke test: it must not overwrite the full results.
    target = HERE / "out" / "RESULTS-quick.md" if args.quick else HERE / "RESULTS.md"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(header + "\n" + "\n".join(sections), encoding="utf-8")
    print(f"wrote {target}")
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
