"""Start-up benchmark: `campaign --help`, `campaign plan --help`, `campaign --version` and
`campaign status` (of a small store: one finished campaign of 10 recipients, and `status 1`)
in fresh processes, against `python -c pass` (the floor: the interpreter and site alone).

    .venv/bin/python bench/bench_startup.py [--runs N] [--before COMMIT] [--modes cached,source]

Each command runs as the console script does (`from campaign.cli import main; main()`),
with this Python and PYTHONPATH set to the tree measured: this checkout ("after") and, with
--before, a copy of COMMIT made with `git archive` ("before"), so both are measured in the
same run, interleaved round by round (the machine's load moves both alike).

Bytecode, two modes:
- cached: a fresh PYTHONPYCACHEPREFIX that the first (unmeasured) run fills; what an
  installed `campaign` does (pip compiles it to .pyc).
- source: PYTHONDONTWRITEBYTECODE=1 and no prefix: the sources of `campaign/` compiled in
  every process (site-packages keep their .pyc), as in a checkout run with that setting.

Printed: best and median wall seconds, median CPU seconds (user + system of the child), a
check that both trees print the same help, and whether each command with a target of
issue 16 (after, cached) is within it, by its best run and by its median: `--help` and
`--version` 0.25 s, `status` 0.5 s.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from trees import git_archive

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {  # seconds (issue 16)
    "campaign --help": 0.25,
    "campaign --version": 0.25,
    "campaign status": 0.5,
    "campaign status 1": 0.5,
}
STORE = "campaign.db"  # in the work folder (the processes' current folder): status reads it
ENTRY = "import sys; from campaign.cli import main; sys.argv[0] = 'campaign'; sys.exit(main())"
COMMANDS: dict[str, list[str]] = {
    "python -c pass": ["-c", "pass"],
    "campaign --help": ["-c", ENTRY, "--help"],
    "campaign plan --help": ["-c", ENTRY, "plan", "--help"],
    "campaign --version": ["-c", ENTRY, "--version"],
    "campaign status": ["-c", ENTRY, "status"],
    "campaign status 1": ["-c", ENTRY, "status", "1"],
}


@dataclass
class Case:
    command: str
    tree: str
    mode: str
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)


def environment(tree: Path, mode: str, cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(tree)
    env["COLUMNS"] = "100"
    if mode == "cached":
        env["PYTHONPYCACHEPREFIX"] = str(cache)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_once(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + system) and stdout of one fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{argv[1:]} failed ({done.returncode}): {done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def small_store(path: Path) -> None:
    """A store of two small campaigns: one planned (10 recipients), one whose request
    the gateway accepted (3 recipients)."""
    sys.path.insert(0, str(ROOT))
    from campaign.store import open_store
    from campaign.store.campaigns import create_campaign
    from tests.support.plans import accepted_batch, small_plan

    engine = open_store(f"sqlite:///{path}")
    create_campaign(engine, small_plan(11, 3), name="small", settings_snapshot={})
    accepted_batch(engine, "1001", ["13900000001", "13900000002", "13900000003"])
    engine.dispose()


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="measured runs of each case")
    parser.add_argument("--before", metavar="COMMIT", help="also measure this commit")
    parser.add_argument("--modes", default="cached,source", help="cached, source or both")
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        work = Path(tmp)
        small_store(work / STORE)
        trees = {"after": ROOT}
        if args.before:
            before = work / "before"
            before.mkdir()
            git_archive(args.before, before)
            trees = {f"before ({args.before})": before, "after": ROOT}
        cases = [
            Case(command, tree, mode)
            for mode in modes
            for command in COMMANDS
            for tree in (trees if command.startswith("campaign") else {"-": ROOT})
        ]
        env_of = {
            (tree, mode): environment(path, mode, work / f"pyc-{mode}")
            for tree, path in {**trees, "-": ROOT}.items()
            for mode in modes
        }
        loads = [load()]
        started = datetime.now(UTC)
        helps: dict[str, str] = {}
        for case in cases:  # warm-up: fills the bytecode cache, keeps the help texts
            argv = [python, *COMMANDS[case.command]]
            _, _, out = run_once(argv, env_of[case.tree, case.mode], work)
            if case.command != "python -c pass":
                helps.setdefault(f"{case.command} {case.mode}", out)
                if helps[f"{case.command} {case.mode}"] != out:
                    helps[f"{case.command} {case.mode}"] = "DIFFERS"
        for _ in range(args.runs):
            for case in cases:
                argv = [python, *COMMANDS[case.command]]
                wall, cpu, _ = run_once(argv, env_of[case.tree, case.mode], work)
                case.walls.append(wall)
                case.cpus.append(cpu)
        loads.append(load())
    report(cases, args.runs, started, loads, helps, python)


def report(
    cases: list[Case],
    runs: int,
    started: datetime,
    loads: list[str],
    helps: dict[str, str],
    python: str,
) -> None:
    print(f"started {started:%Y-%m-%d %H:%M} UTC, {runs} runs per case, interleaved")
    print(f"load average (1, 5, 15 min) at start: {loads[0]}; at end: {loads[1]}")
    print(f"python: {python} ({sys.version.split()[0]})")
    print()
    print("| command | tree | bytecode | best wall | median wall | median CPU |")
    print("|---|---|---|---:|---:|---:|")
    for c in cases:
        print(
            f"| `{c.command}` | {c.tree} | {c.mode} | {min(c.walls):.3f} s "
            f"| {statistics.median(c.walls):.3f} s | {statistics.median(c.cpus):.3f} s |"
        )
    print()
    differs = [name for name, text in helps.items() if text == "DIFFERS"]
    print("help and version output identical in every tree: " + ("yes" if not differs else "no"))
    for name in differs:
        print(f"  differs: {name}")
    for c in cases:
        target = TARGETS.get(c.command)
        if target is not None and c.tree == "after" and c.mode == "cached":
            best, median = min(c.walls), statistics.median(c.walls)
            print(
                f"`{c.command}` (after, cached) against the {target} s target: "
                f"best {best:.3f} s {_verdict(best, target)} (the least disturbed run), "
                f"median {median:.3f} s {_verdict(median, target)} (at this load)"
            )


def _verdict(seconds: float, target: float) -> str:
    return "met" if seconds <= target else "NOT met"


if __name__ == "__main__":
    main()
