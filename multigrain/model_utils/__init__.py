"""ModelZoo-style ``model_utils``: the shared adapters of ``common.adapters``, re-exported."""
from common.adapters import *  # noqa: F401,F403
from common.adapters import __all__  # noqa: F401
