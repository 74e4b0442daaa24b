"""Shared spine of the model zoo: config, data, schedules, losses, callbacks, checkpoints.

Importing it sets the oneDNN ISA cap (see common.device) unless the user set one: this must
happen before MindSpore runs its first op, and every entry point imports ``common`` first
(``common.registry`` loads no MindSpore, so the cap is set before any MindSpore code runs).
"""
from common.device import apply_cpu_fast_path
from common.registry import create_model, list_models, register_model

apply_cpu_fast_path()

__all__ = ["create_model", "list_models", "register_model"]
