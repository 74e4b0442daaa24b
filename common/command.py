"""How every command we ship ends on a user's mistake, the scripts as the entry points (``common.engine.run_main``):
one line ``error: …`` on stderr and exit status 2; ``--help`` prints the usage and exits 0; a bug keeps its
traceback. Imports nothing beyond ``common.errors`` (and ``common``'s light package import: no MindSpore), so that
a launcher's helper (scripts/hccl_tools.py) stays quick.
"""
import argparse
import sys

from common.errors import EXIT_USER_ERROR, ConfigError, UserError, describe_os_error


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose usage errors raise ``ConfigError`` (one line through ``run_command``
    or ``run_main``, exit 2) instead of printing the whole usage, dozens of lines for the entry points."""

    def error(self, message):
        raise ConfigError(f"{message} (see {self.prog} --help)")


def run_command(main, argv=None, user_errors=()):
    """``main(argv)``'s exit status; a ``UserError``, one of ``user_errors`` or an ``OSError`` naming a file
    (a folder that does not exist, a full disk) is one line ``error: …`` and status 2."""
    try:
        return main(argv)
    except (UserError, *user_errors) as err:
        message = getattr(err, "message", None) or str(err)
    except OSError as err:
        if not err.filename:
            raise  # not about a file the user named: a bug or the machine, keep the traceback
        message = f"{err.filename}: {describe_os_error(err)}"
    print(f"error: {message}", file=sys.stderr, flush=True)
    return EXIT_USER_ERROR
