"""Print a family folder's default config, ``<root>/config/<its record's default_config>``: the launchers
(scripts/_common.sh) ask here when no CONFIG_PATH is given, so the record is the one place that names it.

Usage: python scripts/default_config.py FAMILY_DIR     (e.g. dla; its parent is the repository root)
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv in (["-h"], ["--help"]):
        print(__doc__.strip())
        return 0
    if len(argv) != 1:
        print(f"error: {__doc__.strip().splitlines()[-1].strip()}", file=sys.stderr)
        return 2
    family_dir = os.path.abspath(argv[0])
    sys.path[:0] = [os.path.dirname(family_dir), ROOT]  # the folder's families.py and family, this common
    from common.family import default_config_path
    try:
        print(default_config_path(family_dir))
    except ValueError as err:  # on stdout too: the launcher stops with this one line
        print(err)
        return 2  # a user's mistake, as every command's (common.command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
