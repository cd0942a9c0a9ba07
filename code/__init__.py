"""poolvae: pooling rules, models and experiments of the Hellinger and barycentric multimodal VAE papers.

The package is flat: one module per concept (``aggregators``, ``distributions``, ``divergences``,
``expfam``, ...), imported as ``poolvae.<module>``. See README.md for the commands and DESIGN.md for
the data flow.
"""

__version__ = "0.1.0"
