"""Helpers shared by the benchmark scripts: machine info, peak memory of a child, RESULTS.md sections.

Every script writes (or replaces) only its own ``## ...`` section of ``benchmarks/RESULTS.md``, so
sections measured at different times keep their own machine line and command.
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
REPO = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def versions(*dists: str) -> str:
    """``python 3.11.7, torch 2.13.0, ...`` for the installed ones (missing ones: ``not installed``)."""
    parts = [f"Python {platform.python_version()}"]
    for d in dists:
        v = version(d)
        parts.append(f"{d} {v}" if v else f"{d} not installed")
    return ", ".join(parts)


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def machine_line(*dists: str, load_before: str | None = None) -> str:
    """One Markdown line: CPU model, cores, memory, load average (1/5/15 min), versions."""
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        mem_s = f", {mem:.0f} GiB RAM"
    except (ValueError, OSError):
        mem_s = ""
    la = f"load average {load_before} before / {load()} after" if load_before else f"load average {load()}"
    return (
        f"Machine: {cpu_model()}, {os.cpu_count()} cores{mem_s}, {platform.system()} {platform.release()}; "
        f"{la} (1/5/15 min; other jobs share this machine); {versions(*dists)}."
    )


def command_line() -> str:
    """The command that produced the figures, as typed from the repository root."""
    script = Path(sys.argv[0]).resolve()
    try:
        script_s = str(script.relative_to(REPO))
    except ValueError:
        script_s = str(script)
    return "python " + " ".join([script_s, *map(shlex.quote, sys.argv[1:])])


def write_section(title: str, body: str) -> None:
    """Replace (or append) the section ``title`` (a ``## ...`` line) of RESULTS.md."""
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    block = f"{title}\n\n{body.strip()}\n\n"
    new = pattern.sub(lambda _: block, old) if pattern.search(old) else old.rstrip() + "\n\n" + block
    RESULTS.write_text(new)
    print(f"wrote section {title!r} of {RESULTS}", file=sys.stderr)


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run ``cmd``; (wall seconds, peak RSS of that child in MiB, stderr). Raises on failure."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    # read stderr while waiting (a full pipe would block the child)
    err = proc.stderr.read() if proc.stderr else ""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {err.strip()[-500:]}")
    return wall, usage.ru_maxrss / 1024, err  # ru_maxrss: KiB on Linux


def rareflow_cmd() -> list[str]:
    return [sys.executable, "-m", "rareflow"]


def publish(title: str, lines: list[str], dists: tuple[str, ...], *, load_before: str | None = None, write: bool = False) -> None:
    """Print a section (``lines``, then the machine line and the command) and, with ``write``,
    put it into RESULTS.md under ``title``."""
    body = "\n".join([*lines, "", machine_line(*dists, load_before=load_before), f"Command: `{command_line()}`"])
    print(body)
    if write:
        write_section(title, body)
