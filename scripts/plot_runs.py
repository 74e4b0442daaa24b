"""Overlay the training curves of several runs (their summary.csv): train loss, lr, top-1 against epoch.

    python scripts/plot_runs.py RUN_DIR [RUN_DIR ...] --out FILE.png [--names A,B]

Each RUN_DIR is a training run's output_dir (or its summary.csv); each run is a line in every panel,
named in the legend by its folder (or --names). Errors are one line ``error: …`` on stderr, exit
status 2 (common.command).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common.command import ArgumentParser, run_command  # noqa: E402
from common.errors import UserError  # noqa: E402


def main(argv=None):
    return run_command(plot, argv)


def plot(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="a run's output_dir or its summary.csv")
    parser.add_argument("--out", required=True, help="the PNG to write")
    parser.add_argument("--names", default="", help="comma-separated legend names (default: the folders' names)")
    args = parser.parse_args(argv)
    from common.curves import save_curves
    runs = load_runs(args.runs, args.names.split(",") if args.names else None)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    save_curves(runs, args.out)
    print(f"{len(runs)} run(s) -> {args.out}")
    return 0


def load_runs(paths, names=None):
    """{legend name: summary rows} of run folders (or summary.csv files), named by folder unless ``names``."""
    from common.curves import SUMMARY, read_summary
    names = names or [_name(run) for run in paths]
    if len(names) != len(paths):
        raise UserError(f"--names gives {len(names)} names for {len(paths)} runs")
    if len(set(names)) != len(names):
        raise UserError(f"two runs have the same name in the legend ({', '.join(names)}): pass --names")
    runs = {}
    for name, run in zip(names, paths):
        path = os.path.join(run, SUMMARY) if os.path.isdir(run) else run
        if not os.path.isfile(path):
            raise UserError(f"{run} has no {SUMMARY}: pass a training run's output_dir")
        runs[name] = read_summary(path)
        if not runs[name]:
            raise UserError(f"{path} has no epoch yet")
    return runs


def _name(run):
    path = os.path.abspath(run)
    return os.path.basename(os.path.dirname(path) if os.path.isfile(path) else path)


if __name__ == "__main__":
    sys.exit(main())
