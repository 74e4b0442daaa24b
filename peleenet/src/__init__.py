from peleenet.src import peleenet  # noqa: F401  (registers the PeleeNet entrypoint)
