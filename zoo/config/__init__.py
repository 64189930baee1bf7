"""Layer: config. What a user writes: recipes (``Recipe``, ``TrainArgs``), dotted ``--set`` overrides,
prompt formats and generation settings.

Plain dataclasses and their checks, over the data layer (a recipe names a task, checked against the
task list). Nothing here imports torch, transformers or PEFT, so ``import zoo`` and ``zoo --help``
stay fast; PEFT's config classes arrive with the recipe file that uses them.
"""
