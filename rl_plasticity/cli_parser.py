"""The ``rlp`` command line's grammar: each subcommand's arguments, their types and help.

:func:`build_parser` builds the parser that ``rl_plasticity.cli.main`` reads the command line
with; what each subcommand does is in ``rl_plasticity.cli``, which looks it up by the parsed
``command``. A bad argument is one line on stderr (``rlp: error: ...``) and exit code
:data:`EXIT_USAGE`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from rl_plasticity.errors import ConfigError

#: exit code of bad input (a spec, a flag, an existing run)
EXIT_USAGE = 2


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Help that shows each option's default, where it has one worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.required or action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``rlp: error: ...``) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"rlp: error: {self.prog.removeprefix('rlp ')}: {message}\n")


def _count(key: str, minimum: int = 1) -> Callable[[str], int]:
    from rl_plasticity.overrides import parse_count

    def parse(text: str) -> int:
        try:
            return parse_count(text, key, minimum)
        except ConfigError as e:
            raise argparse.ArgumentTypeError(e.allowed) from None

    return parse


def _population(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return _count("population")(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"auto or a positive whole number, not {text!r}") from None


def _minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"a positive number of minutes, not {text!r}")
    return value


def _add_run_options(p: argparse.ArgumentParser, grid: bool) -> None:
    """Options that ``train`` and ``sweep`` share: --set, checkpoints, evaluation, progress."""
    values = "VALUE[,VALUE...]" if grid else "VALUE"
    p.add_argument(
        "--set",
        action="append",
        metavar=f"KEY={values}",
        help="override a dotted agent spec key with a TOML value, e.g. "
        "hyperparameters.learning_rate=3e-4"
        + ("; several values: one agent per combination" if grid else "")
        + " (repeatable)",
    )
    p.add_argument(
        "--checkpoint-minutes",
        type=_minutes,
        metavar="MINUTES",
        help="also checkpoint every this many minutes (besides the spec's checkpoint_every)",
    )
    p.add_argument(
        "--eval-every",
        type=_count("eval-every"),
        metavar="STEPS",
        help="evaluate the deterministic policy every this many steps into eval.csv (default: "
        "no evaluation)",
    )
    p.add_argument(
        "--eval-episodes",
        type=_count("eval-episodes"),
        default=5,
        metavar="N",
        help="episodes per physics",
    )
    p.add_argument(
        "--eval-phases",
        default="all",
        metavar="N",
        help="earlier phases to evaluate besides the current one (all, or the N most recent)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress display")


def build_parser() -> argparse.ArgumentParser:
    """The ``rlp`` argument parser."""
    from importlib import metadata

    defaults = _Help
    parser = _Parser(prog="rlp", description="Study and fix loss of plasticity in deep RL.")
    parser.add_argument(
        "--version", action="version", version=f"rlp {metadata.version('rl_plasticity')}"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train one agent on one environment", formatter_class=defaults)
    p.add_argument("--env", required=True, help="env spec name or .toml path")
    p.add_argument("--agent", required=True, help="agent spec name or .toml path")
    seed = p.add_mutually_exclusive_group()
    seed.add_argument(
        "--seed", type=int, default=0, help="seed of the algorithm, networks and envs"
    )
    seed.add_argument(
        "--seeds",
        default=None,
        help="several seeds (e.g. 0-7) trained in this one process as a population: one run "
        "directory each, their policy calls (and updates, where nothing hooks them) batched "
        "(FastPPO agents; others train one after another)",
    )
    p.add_argument(
        "--steps",
        type=_count("steps"),
        required=True,
        help="total environment steps (1000000, 1_000_000 or 1e6; rounded up to whole rollouts)",
    )
    p.add_argument("--root", type=Path, default=Path("runs"), help="folder of run groups")
    p.add_argument("--out", dest="root", type=Path, help="alias of --root")
    p.add_argument("--group", default="default", help="sub-folder for this batch of runs")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), help="overrides the agent spec")
    again = p.add_mutually_exclusive_group()
    again.add_argument(
        "--resume",
        action="store_true",
        help="continue the run from its last checkpoint (a run not started yet starts; one "
        "without a checkpoint is refused)",
    )
    again.add_argument(
        "--restart", action="store_true", help="train the run again from step 0, replacing it"
    )
    _add_run_options(p, grid=False)

    p = sub.add_parser(
        "sweep", help="train a grid of envs x agents x seeds", formatter_class=defaults
    )
    p.add_argument(
        "--study",
        default=None,
        help="a study spec (name or .toml) giving envs, agents, seeds, steps and group; "
        "options given beside it are refused",
    )
    p.add_argument("--envs", default=None, help="comma-separated env specs (required)")
    p.add_argument("--agents", default=None, help="comma-separated agent specs (required)")
    p.add_argument("--seeds", default=None, help="e.g. 0-4 or 0,2,5 (default: 0)")
    p.add_argument(
        "--steps", type=_count("steps"), default=None, help="environment steps per run (required)"
    )
    p.add_argument("--root", type=Path, default=Path("runs"), help="folder of run groups")
    p.add_argument(
        "--group", default=None, help="this sweep's folder under --root (default: sweep)"
    )
    p.add_argument(
        "--jobs", type=_count("jobs"), default=None, help="parallel runs (default: every core)"
    )
    p.add_argument("--backend", choices=("local", "ray"), default="local", help="where runs run")
    p.add_argument("--address", default=None, help="Ray cluster address (with --backend ray)")
    p.add_argument(
        "--storage",
        default=None,
        metavar="PATH_OR_URI",
        help="with --backend ray: where runs are kept, a path every node shares or a URI "
        "(file://, s3://, gs://, ...); runs train on their worker's disk and are copied there "
        "at every checkpoint (default: --root, shared)",
    )
    p.add_argument(
        "--population",
        type=_population,
        default="auto",
        metavar="N|auto",
        help="local backend: train up to N seeds of one env and agent in one process, as a "
        "population (FastPPO agents: their policy calls and updates batched, methods and "
        "metrics on member stacks); 1: a process per run; default auto: FastPPO agents' seeds "
        "in as few populations as keep --jobs processes busy, other agents a process per run",
    )
    p.add_argument(
        "--max-retries",
        type=_count("max-retries", minimum=0),
        default=None,
        metavar="N",
        help="with --backend ray: tries of a run after the first when its worker or node is "
        "lost, each from its last stored checkpoint (default: 3)",
    )
    p.add_argument(
        "--runtime-env",
        type=Path,
        default=None,
        metavar="FILE",
        help="with --backend ray: a JSON or YAML file with Ray's runtime_env for the workers "
        "(pip, env_vars, working_dir, container, ...)",
    )
    _add_run_options(p, grid=True)

    p = sub.add_parser("report", help="figures and a Markdown report of the runs under DIR")
    p.add_argument(
        "dir", help="a folder of runs (e.g. runs/sweep), or a sweep's --storage URI (file://...)"
    )
    p.add_argument(
        "--out", default=None, help="where to write (default: DIR/report; for a URI: ./report)"
    )
    p.add_argument("--groups", default=None, help="only these groups, comma-separated")
    p.add_argument("--envs", default=None, help="only these env specs, comma-separated")
    p.add_argument("--agents", default=None, help="only these agent specs, comma-separated")
    p.add_argument("--seeds", default=None, help="only these seeds, e.g. 0-4 or 0,2,5")
    p.add_argument(
        "--unfinished",
        action="store_true",
        help="also report interrupted and running runs, up to the step each reached",
    )
    p.add_argument(
        "--study",
        default=None,
        help="a study spec (name or .toml): apply its pre-registered test and print the verdicts",
    )

    p = sub.add_parser("envs", help="list environment specs")
    p.add_argument("--show", metavar="NAME", help="show one spec and its schedule")

    p = sub.add_parser("agents", help="list agent specs")
    return parser
