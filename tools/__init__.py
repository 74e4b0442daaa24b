"""Developer tools that run over the model zoo (not imported by ``common`` or the families)."""
