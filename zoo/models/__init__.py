"""Layer: models. Loading base models: a classifier with a fresh head, a causal LM, the 4-bit (QLoRA)
variant of either, where a model's blocks and head are, and plain one-model generation.

Knows nothing of adapters or hubs; the methods, training and serving layers build on it.
"""
