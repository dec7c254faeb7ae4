"""Cold ingestion side by side: another copy of trawl's code against this one, same files.

    python benchmarks/_ingest_side_by_side.py --base DIR [--docs 1000] [--rounds 2]
        [--pipeline hybrid] [--quick]

``DIR`` holds the other code's ``core`` and ``plugins`` (a checkout, or
``git archive REV core plugins benchmarks | tar -x -C DIR``); it runs from this venv with
``PYTHONPATH`` pointing there. Each round runs ``benchmarks/ingest.py --child PIPELINE`` of
the base, then of this tree, in fresh processes on the same files corpus, so load hits both
alike; the child's CPU seconds (model load and the warm re-runs included) are the steady
column on a shared machine. Not part of ``run_all`` (it needs ``--base``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import ingest as corpus  # noqa: E402  (the files corpus of benchmarks/ingest.py)


def _run(root: Path, env: dict[str, str], pipeline: str, files: Path) -> dict[str, object]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    proc = subprocess.run([sys.executable, str(root / "benchmarks" / "ingest.py"), "--child",
                           pipeline, "--files", str(files)],
                          env={**os.environ, **env}, capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{root}: {proc.stderr.strip()[-2000:]}")
    rows = json.loads(proc.stdout.strip().splitlines()[-1])
    cold = next(r for r in rows if str(r["run"]).startswith("cold"))
    return {**cold, "load": load,
            "cpu": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True, type=Path, help="folder with core/ and plugins/")
    ap.add_argument("--docs", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--pipeline", default="hybrid")
    ap.add_argument("--quick", action="store_true", help="100 files, one round")
    args = ap.parse_args(argv)
    base = args.base.resolve()
    if not (base / "core" / "trawl").is_dir():
        print(f"--base {base}: no core/trawl there", file=sys.stderr)
        return 1
    if not (base / "benchmarks" / "ingest.py").is_file():
        base_bench = HERE.parent  # a base without benchmarks/ runs this tree's child script
    else:
        base_bench = base
    variants = [("base", base_bench, {"PYTHONPATH": f"{base}/core:{base}/plugins"}),
                ("this tree", HERE.parent, {})]
    lines = ["| round | code | docs | chunks | cold s | docs/s | peak RSS MB | child CPU s "
             "| load |", "|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        files = Path(tmp) / "files"
        n = corpus._files_corpus(files, 100 if args.quick else args.docs)
        for r in range(1 if args.quick else args.rounds):
            rates = []
            for name, root, env in variants:
                x = _run(root, env, args.pipeline, files)
                rate = float(x["docs"]) / float(x["seconds"])
                rates.append(rate)
                lines.append(f"| {r + 1} | {name} | {x['docs']} | {x['chunks']} | "
                             f"{x['seconds']:.1f} | {rate:.1f} | {x['rss_peak']:.0f} | "
                             f"{x['cpu']:.1f} | {x['load']} |")
                print(lines[-1], flush=True)
            ratios.append(rates[1] / rates[0])
    print(f"\n`{args.pipeline}`, {n} SciFact files, base {base}\n")
    print("\n".join(lines))
    print("\ndocs/s ratio (this tree / base) per round: "
          + ", ".join(f"{x:.2f}" for x in ratios))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
