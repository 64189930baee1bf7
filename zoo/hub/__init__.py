"""Layer: hub. Publishing and finding adapters: the local hub (a folder under ZOO_HOME), the Hugging
Face Hub through ``huggingface_hub`` (``backends``), and a loopback server speaking the part of the
Hub API that ``huggingface_hub`` uses (``server``).

A sibling of ``zoo.models``: it moves adapter folders (checked with the artifact layer's rules) and
never loads a model, so listing a hub imports no torch.
"""
