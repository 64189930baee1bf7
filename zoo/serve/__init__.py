"""Layer: serve. Many adapters on one frozen base in memory, chosen per request: reading an adapter's
tensors (each method's reader), wrapping the base for per-row routing, the registry itself, handles,
generation, coalescing of concurrent requests, and ``zoo.load`` with its stand-alone fallback.

A sibling of ``zoo.training`` (neither imports the other), above the methods, models and hubs.
"""
