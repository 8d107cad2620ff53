"""Re-make the result tables of the README and the docs from the commands that produce them.

Usage (from the repository root; ``make docs-figures`` runs it with the project's venv)::

    python scripts/docs_figures.py                 # every job (long: the MAGIC flow study takes ~1 h on 2 cores)
    python scripts/docs_figures.py demo magic      # only these jobs
    python scripts/docs_figures.py --list          # the jobs, their commands and targets

Each job runs its commands (``rareflow compare ...``), then a table command
(``examples/results_table.py``) whose output is the table. A job with a ``target`` replaces the
block between ``<!-- docs-figures: NAME -->`` and ``<!-- /docs-figures: NAME -->`` in that file
with the table and a line saying how it was made and how long it took, so the numbers in the file
are exactly the command's output and cannot drift. Jobs without a target (hand-formatted tables in
``examples/*.md``) write their table to ``out/docs-figures/NAME.md`` to compare with the page.
Nothing is written into a file when a command fails.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "out" / "docs-figures"


@dataclass(frozen=True)
class Job:
    name: str
    commands: tuple[str, ...]
    table: str
    target: str | None = None  # file (relative to the root) holding the marked block


_MAGIC = ("magic_rare", "magic_anomaly", "magic_anomaly_fit_rare")
JOBS = (
    Job("demo", ("rareflow compare --out out/demo",), "python examples/results_table.py out/demo/metrics.json",
        "README.md"),
    Job("magic", tuple(f"rareflow compare --config examples/{n}.yaml --out out/{n}" for n in _MAGIC),
        "python examples/results_table.py " + " ".join(f"out/{n}/metrics.json" for n in _MAGIC), "README.md"),
    Job("magic_rare_flows", ("rareflow compare --config examples/magic_rare_flows.yaml --out out/magic_rare_flows",),
        "python examples/results_table.py --full out/magic_rare_flows/metrics.json"),
    Job("sim_images", ("rareflow compare --config examples/sim_images.yaml --out out/sim_images",),
        "python examples/results_table.py --full out/sim_images/metrics.json"),
    Job("energy", ("rareflow compare --config examples/energy_study.yaml --out out/energy_study",),
        "python examples/energy_study.py --table out/energy_study/metrics.json", "docs/energy.md"),
    Job("image_learning_curve", (), "python examples/image_learning_curve.py --sizes 5000 10000 20000 40000 --test 10000"),
    Job("sim_rare_1e-4", ("rareflow compare --config examples/sim_rare_1e-4.yaml --out out/sim_rare_1e-4",),
        "python examples/results_table.py --full out/sim_rare_1e-4/metrics.json"),
    Job("magic_fc_width", ("rareflow compare --config examples/magic_flow_classifier_width.yaml --out out/magic_fc_width --threads 1",),
        "python examples/results_table.py --full out/magic_fc_width/metrics.json", "docs/flow-classifier.md"),
    Job("sim_images_two_class",
        ("rareflow compare --config examples/sim_images_two_class.yaml --out out/sim_images_two_class --scheduler local",),
        "python examples/image_matrix.py out/sim_images_two_class/metrics.json", "examples/IMAGES.md"),
)  # fmt: skip


def _run(command: str) -> str:
    """Run one command (``rareflow`` and ``python`` from this interpreter's environment); its stdout."""
    argv = shlex.split(command)
    if argv[0] == "rareflow":
        argv = [sys.executable, "-m", "rareflow", *argv[1:]]
    elif argv[0] == "python":
        argv = [sys.executable, *argv[1:]]
    print(f"$ {command}", file=sys.stderr, flush=True)
    done = subprocess.run(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if done.returncode:
        raise SystemExit(f"docs-figures: `{command}` failed (exit {done.returncode}); no file was changed")
    return done.stdout


def replace_block(text: str, name: str, body: str) -> str:
    """``text`` with the block between the two markers of ``name`` replaced by ``body``."""
    pattern = re.compile(rf"(<!-- docs-figures: {re.escape(name)} -->\n).*?(<!-- /docs-figures: {re.escape(name)} -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"docs-figures: no block '<!-- docs-figures: {name} -->' ... in the target file")
    return pattern.sub(lambda m: m.group(1) + body.rstrip("\n") + "\n" + m.group(2), text, count=1)


def run_job(job: Job, tables_only: bool = False) -> None:
    t0 = time.perf_counter()
    for command in () if tables_only else job.commands:
        _run(command)
    minutes = (time.perf_counter() - t0) / 60
    table = _run(job.table)
    took = "the table from outputs already in out/" if tables_only else f"{minutes:.1f} min on {os.cpu_count()} cores"
    note = (
        f"<sub>Made by `python scripts/docs_figures.py {job.name}` ({'; '.join(job.commands)}; then "
        f"`{job.table}`) on {time.strftime('%Y-%m-%d')}: {took}.</sub>\n"
    )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{job.name}.md").write_text(table + "\n" + note)
    if job.target:
        path = ROOT / job.target
        path.write_text(replace_block(path.read_text(), job.name, table + "\n" + note))
        print(f"docs-figures: {job.name}: updated {job.target} ({minutes:.1f} min)", file=sys.stderr)
    else:
        print(f"docs-figures: {job.name}: wrote {OUT / (job.name + '.md')} ({minutes:.1f} min)", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("jobs", nargs="*", help=f"jobs to run (default: all): {', '.join(j.name for j in JOBS)}")
    ap.add_argument("--list", action="store_true", help="list the jobs and exit")
    ap.add_argument("--tables-only", action="store_true",
                    help="skip the jobs' commands; re-make the tables from the outputs already in out/ (after running the commands yourself)")
    args = ap.parse_args(argv)
    if args.list:
        for j in JOBS:
            print(f"{j.name}: {' && '.join(j.commands)} -> {j.table} -> {j.target or OUT / (j.name + '.md')}")
        return 0
    known = {j.name: j for j in JOBS}
    unknown = [n for n in args.jobs if n not in known]
    if unknown:
        raise SystemExit(f"docs-figures: unknown job(s) {unknown}; jobs: {', '.join(known)}")
    for job in [known[n] for n in args.jobs] or list(JOBS):
        run_job(job, args.tables_only)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
