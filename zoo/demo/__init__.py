"""Layer: demo. The Gradio Space: the catalogue engine (``catalogue``: entries from a hub, answered
through the registry) and the page (``app``, which alone imports gradio, an optional dependency).

Above serving and the hubs; only the API and the CLI sit higher.
"""
