"""The model families of this repository, one line each: the folder (package) that registers its models
and its ``common.family.Family`` record in ``<folder>/src/__init__.py``. ``common`` reads this list; adding a
family is one folder plus one name here."""
FAMILIES = ("dla", "peleenet", "multigrain")
DEFAULT_MODEL = "dla34"  # the model of a config that names none (common.family.default_model)
