"""The ``rlp`` command line: train, sweep, report, envs, agents.

Exit codes: 0 success, 1 a run (or some runs of a sweep) failed, 2 bad input (a spec, a flag, an
existing run), with a one-line error on stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from rl_plasticity.errors import ConfigError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _error(message: str) -> int:
    print(f"rlp: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _cmd_train(args: argparse.Namespace) -> int:
    from rl_plasticity.experiment import RunExistsError, RunSetupError, train

    try:
        result = train(
            args.env,
            args.agent,
            args.seed,
            args.steps,
            root=args.root,
            group=args.group,
            resume=args.resume,
            device=args.device,
            progress_bar=not args.no_progress,
        )
    except (ConfigError, RunExistsError, RunSetupError) as e:
        return _error(str(e))
    if result.status == "failed":
        print(f"rlp: run failed: {result.reason}", file=sys.stderr)
        print(result.path)
        return EXIT_FAILED
    if result.status == "skipped":
        print(f"already done: {result.path}", file=sys.stderr)
    print(result.path)
    return EXIT_OK


def _cmd_sweep(args: argparse.Namespace) -> int:
    from rl_plasticity.sweep import parse_seeds, sweep

    try:
        seeds = parse_seeds(args.seeds)
        result = sweep(
            [e for e in args.envs.split(",") if e],
            [a for a in args.agents.split(",") if a],
            seeds,
            args.steps,
            root=args.root,
            group=args.group,
            jobs=args.jobs,
            backend=args.backend,
            address=args.address,
        )
    except ConfigError as e:
        return _error(str(e))
    print(result.summary())
    return EXIT_FAILED if result.failed else EXIT_OK


def _cmd_report(args: argparse.Namespace) -> int:
    from rl_plasticity.report import write_report
    from rl_plasticity.sweep import parse_seeds

    if not Path(args.dir).is_dir():
        return _error(f"{args.dir}: no such directory")

    def names(text: str | None) -> list[str] | None:
        return [n for n in text.split(",") if n] if text is not None else None

    try:
        report = write_report(
            Path(args.dir),
            Path(args.out) if args.out else None,
            groups=names(args.groups),
            envs=names(args.envs),
            agents=names(args.agents),
            seeds=parse_seeds(args.seeds) if args.seeds is not None else None,
        )
    except ConfigError as e:
        return _error(str(e))
    print(report)
    return EXIT_OK


def _cmd_envs(args: argparse.Namespace) -> int:
    from rl_plasticity.specs import available_specs, load_env_spec

    if args.show:
        from rl_plasticity.nonstationary import describe

        try:
            spec = load_env_spec(args.show)
        except ConfigError as e:
            return _error(str(e))
        print(f"{spec.name}: {spec.description}")
        print(f"  file:     {spec.path}")
        print(f"  base env: {spec.env_id}" + (f"  (gym id {spec.gym_id})" if spec.gym_id else ""))
        if spec.env_kwargs:
            print(f"  kwargs:   {spec.env_kwargs}")
        if spec.nonstationary is None:
            print("  stationary")
        else:
            for line in describe(spec.nonstationary):
                print(f"  {line}")
        return EXIT_OK
    return _list_specs(available_specs("envs"), lambda p: load_env_spec(p).description)


def _cmd_agents(args: argparse.Namespace) -> int:
    from rl_plasticity.specs import available_specs, load_agent_spec

    return _list_specs(available_specs("agents"), lambda p: load_agent_spec(p).description)


def _list_specs(specs: dict[str, Path], describe_one: Callable[[Path], str]) -> int:
    width = max((len(n) for n in specs), default=0)
    for name, path in specs.items():
        try:
            line = describe_one(path)
        except ConfigError as e:
            line = f"INVALID: {e}"
        print(f"{name:<{width}}  {line}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The ``rlp`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="rlp", description="Study and fix loss of plasticity in deep RL."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train one agent on one environment")
    p.add_argument("--env", required=True, help="env spec name or .toml path")
    p.add_argument("--agent", required=True, help="agent spec name or .toml path")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, required=True, help="total environment steps")
    p.add_argument("--root", type=Path, default=Path("runs"), help="folder of run groups")
    p.add_argument("--out", dest="root", type=Path, help="alias of --root")
    p.add_argument("--group", default="default", help="sub-folder for this batch of runs")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), help="overrides the agent spec")
    p.add_argument("--resume", action="store_true", help="continue an unfinished run")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("sweep", help="train a grid of envs x agents x seeds")
    p.add_argument("--envs", required=True, help="comma-separated env specs")
    p.add_argument("--agents", required=True, help="comma-separated agent specs")
    p.add_argument("--seeds", default="0", help="e.g. 0-4 or 0,2,5")
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--root", type=Path, default=Path("runs"))
    p.add_argument("--group", default="sweep")
    p.add_argument("--jobs", type=int, default=None, help="parallel runs (default: every core)")
    p.add_argument("--backend", choices=("local", "ray"), default="local")
    p.add_argument("--address", default=None, help="Ray cluster address (with --backend ray)")
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("report", help="figures and a Markdown report of the runs under DIR")
    p.add_argument("dir", help="a folder of runs (e.g. runs/sweep)")
    p.add_argument("--out", default=None, help="where to write (default: DIR/report)")
    p.add_argument("--groups", default=None, help="only these groups, comma-separated")
    p.add_argument("--envs", default=None, help="only these env specs, comma-separated")
    p.add_argument("--agents", default=None, help="only these agent specs, comma-separated")
    p.add_argument("--seeds", default=None, help="only these seeds, e.g. 0-4 or 0,2,5")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("envs", help="list environment specs")
    p.add_argument("--show", metavar="NAME", help="show one spec and its schedule")
    p.set_defaults(func=_cmd_envs)

    p = sub.add_parser("agents", help="list agent specs")
    p.set_defaults(func=_cmd_agents)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``rlp`` with ``argv`` (default: the process's arguments); return the exit code."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
