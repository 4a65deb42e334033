"""The error a user's input gets: it names the bad value and, where it helps, what to do."""


class InputError(ValueError):
    """A file, path, configuration value or corpus that cannot be used as given.

    The `keras-seq2seq` command answers it with its message on one line and exit
    status 2 (a traceback only with `--debug`); library callers can catch it.
    """


class WorkerLost(RuntimeError):
    """A multi-worker training lost a worker (killed, crashed or stuck past the collective timeout).

    The `keras-seq2seq` command answers it with one line and exit status 1; starting
    every worker's command again resumes the run from its backup.
    """
