from dla.src import dla  # noqa: F401  (registers the DLA variants)
