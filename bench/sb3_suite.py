"""SB3's own tests run with SB3's PPO and again with FastPPO in its place, compared test by test.

The tests are those of the installed Stable-Baselines3 version: its source distribution on PyPI
carries ``tests/``, which ``pip download`` fetches once into ``--workdir`` (or give a checkout of
the same version with ``--tests``). The test files that mention ``PPO`` are run twice with pytest:
once as they are, once with ``-p bench.sb3_suite_fastppo`` (which sets ``stable_baselines3.PPO``
and ``stable_baselines3.ppo.PPO`` to FastPPO before the tests import it). Test ids are compared
after writing ``FastPPO`` as ``PPO``; a test that passes with SB3's PPO and fails with FastPPO is a
regression, listed in the report, and the exit code is 1.

    .venv/bin/python -m pip install -e ".[dev,sb3-tests]"   # SB3's test files also need pandas
    .venv/bin/python -m bench.sb3_suite --out bench/results/sb3_suite.md
    .venv/bin/python -m bench.sb3_suite --tests ~/src/stable-baselines3/tests -k "not expensive"

Parametrized tests of other algorithms (A2C, DQN, SAC, TD3, DDPG) are deselected (``-k``); they do
not touch PPO.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import stable_baselines3

ROOT = Path(__file__).resolve().parent.parent
OTHER_ALGORITHMS = ("A2C", "DQN", "SAC", "TD3", "DDPG")
PLUGIN = "bench.sb3_suite_fastppo"


def fetch_tests(version: str, workdir: Path) -> Path:
    """The ``tests`` folder of SB3 ``version``'s source distribution, downloaded once.

    :param version: an SB3 version, e.g. ``2.9.2``
    :param workdir: where the archive is downloaded and unpacked
    :return: the unpacked ``tests`` folder
    """
    tests = workdir / f"stable_baselines3-{version}" / "tests"
    if tests.is_dir():
        return tests
    workdir.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
    subprocess.run([*pip, "-d", str(workdir), f"stable-baselines3=={version}"], check=True)
    with tarfile.open(workdir / f"stable_baselines3-{version}.tar.gz") as archive:
        archive.extractall(workdir, filter="data")
    return tests


def ppo_test_files(tests: Path) -> list[Path]:
    """The test files that mention PPO."""
    return sorted(p for p in tests.glob("test_*.py") if "PPO" in p.read_text())


def run_pytest(tests: Path, files: list[Path], fast: bool, keyword: str, report: Path) -> None:
    """Run pytest on ``files`` (FastPPO in place of PPO when ``fast``), results to ``report``."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE"]
    command.append("--continue-on-collection-errors")  # e.g. a test file needing pandas
    config = tests.parent / "pyproject.toml"
    if config.is_file():
        command += ["-c", str(config), "--rootdir", str(tests.parent)]
    if fast:
        command += ["-p", PLUGIN]
    command += ["-k", keyword, f"--junitxml={report}", *map(str, files)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    subprocess.run(command, cwd=tests.parent, env=env, check=False)


def outcomes(report: Path) -> dict[str, str]:
    """Test id -> passed, failed, error or skipped, from a JUnit XML report (FastPPO as PPO)."""
    results = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}".replace("FastPPO", "PPO")
        outcome = "passed"
        for tag in ("failure", "error", "skipped"):
            if case.find(tag) is not None:
                outcome = {"failure": "failed"}.get(tag, tag)
        results[name] = outcome
    return results


def failure_text(report: Path, test_id: str) -> str:
    """The first line of a test's failure message in a JUnit XML report."""
    for case in ET.parse(report).getroot().iter("testcase"):
        if f"{case.get('classname')}::{case.get('name')}".replace("FastPPO", "PPO") == test_id:
            for tag in ("failure", "error"):
                node = case.find(tag)
                if node is not None:
                    return (node.get("message") or "").splitlines()[0][:200]
    return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=Path, help="an SB3 tests folder (default: download)")
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out" / "sb3_suite")
    parser.add_argument("-k", dest="keyword", default="", help="extra pytest -k expression")
    parser.add_argument("--files", nargs="*", help="test file names (default: all naming PPO)")
    parser.add_argument("--out", type=Path, help="write the comparison here (Markdown)")
    args = parser.parse_args(argv)
    version = stable_baselines3.__version__
    tests = args.tests or fetch_tests(version, args.workdir)
    files = [tests / f for f in args.files] if args.files else ppo_test_files(tests)
    keyword = " and ".join(f"not {name}" for name in OTHER_ALGORITHMS)
    if args.keyword:
        keyword = f"({keyword}) and ({args.keyword})"
    args.workdir.mkdir(parents=True, exist_ok=True)
    reports = {engine: args.workdir / f"{engine}.xml" for engine in ("PPO", "FastPPO")}
    for engine, report in reports.items():
        run_pytest(tests, files, engine == "FastPPO", keyword, report)
    plain, fast = outcomes(reports["PPO"]), outcomes(reports["FastPPO"])
    regressions = sorted(t for t, o in plain.items() if o == "passed" and fast.get(t) != "passed")
    counts = {
        engine: {o: list(r.values()).count(o) for o in ("passed", "failed", "error", "skipped")}
        for engine, r in (("PPO", plain), ("FastPPO", fast))
    }
    lines = [
        f"# SB3 {version}'s tests with PPO and with FastPPO",
        "",
        f"Command: `python -m bench.sb3_suite {' '.join(argv or sys.argv[1:])}`".rstrip() + "",
        f"Files: {', '.join(f.name for f in files)}; `-k {keyword}`",
        "",
        "| engine | passed | failed | error | skipped |",
        "|---|---|---|---|---|",
        *(
            f"| {e} | {c['passed']} | {c['failed']} | {c['error']} | {c['skipped']} |"
            for e, c in counts.items()
        ),
        "",
        f"Tests passing with PPO and not with FastPPO: {len(regressions)}",
        *(
            f"- `{t}` ({fast.get(t, 'missing')}): {failure_text(reports['FastPPO'], t)}"
            for t in regressions
        ),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 1 if regressions else 0


if __name__ == "__main__":
    sys.exit(main())
