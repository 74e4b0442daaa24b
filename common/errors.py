"""The errors a user can cause, in one hierarchy the entry points catch (common.engine.run_main).

``UserError`` and its subclasses print as one line ``error: ...`` and exit 2; ``Diverged`` (a
NaN/inf loss) exits 3. Anything else is a bug in this code and keeps its traceback. Library code
raises these instead of ``SystemExit`` so it can be called from tests and notebooks.
"""
import errno

EXIT_USER_ERROR = 2
EXIT_DIVERGED = 3
EXIT_PREEMPTED = 143  # 128 + SIGTERM: what a scheduler expects of a job it asked to stop


class UserError(Exception):
    """An error the user can fix (config, data, weights, files), printed as one line."""


class ConfigError(UserError):
    """A configuration value that cannot be used."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message  # kept: callers read ``err.message``


class DatasetError(UserError, ValueError):
    """A dataset that cannot be used, with a one-line reason."""


class WeightsError(UserError, ValueError):
    """Weights that do not fit the network, or a weights file that cannot be read."""


class OutputError(UserError):
    """An output that cannot be written: a folder that is a file, an earlier run, a full disk."""


class Diverged(RuntimeError):
    """The run diverged (NaN/inf loss or weights): training stopped, exit status 3."""


class Preempted(Exception):
    """SIGTERM: a resumable checkpoint was saved at a step boundary (``common.preemption``); exit 143."""


def find_in_chain(err, kinds):
    """``err`` or the first exception in its ``__cause__``/``__context__`` chain that is one of
    ``kinds`` (MindSpore re-raises a callback's exception inside its own), else None."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, kinds):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def describe_os_error(err):
    """``No space left on device`` and the like, without the errno number."""
    text = err.strerror or str(err)
    return text + (" (disk full)" if err.errno in (errno.ENOSPC, errno.EDQUOT) else "")
