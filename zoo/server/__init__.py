"""Layer: server. ``zoo serve``: the demo's catalogue engine (``zoo.demo.catalogue``) behind an HTTP API on
Starlette and uvicorn: classification, OpenAI-compatible completions and chat (streaming included), the model
list, health and Prometheus metrics, with a bounded queue, deadlines, optional bearer-token auth and the
catalogue kept current while serving. Requests are checked in ``requests`` and nowhere else.

Above the demo's engine (which it reuses, not the Gradio page); only the API and the CLI sit higher.
"""
