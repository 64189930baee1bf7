"""Layer: artifact. What a run leaves behind and a push publishes: the adapter record (zoo.json, read
and validated in one place into a typed ``AdapterRecord``), the folder's safety rules (safetensors
only), the model card (a Jinja template rendered into Hub metadata) and the training curve.

Above config and data (a record describes a recipe's run on a task), below everything that reads or
writes adapters: models, hubs, methods, training, serving.
"""
