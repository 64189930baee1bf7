"""Layer: data. Where models and data come from (the Hub, the offline packages, the data mirror),
what a base id means (legacy Hub ids and their organisation form are one base), what a task is
(its splits, labels, fields) and how it is scored.

The lowest layer after the errors: it knows nothing of recipes, adapters or serving, so everything
above can ask it where a model or a data set is.
"""
