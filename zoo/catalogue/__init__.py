"""The catalogue as a product: the comparison tables and plots every course report made by hand, built from
the published records only (``zoo report``), never by re-running anything.

Beside training and serving (it reads the hubs' listings and the methods' names, and loads no model);
the demo's Results tab sits above it.
"""
