"""Research experiments, each in its own folder with the code that produces its results.

``experiments/<name>/run.py`` runs experiment ``<name>`` and writes its committed pages
(``results.md``, ``results.json``, figures) beside it; ``README.md`` there describes the method
and reads the results. This package is not installed with mmgym: run an experiment from the
repository root, e.g. ``python -m experiments.learn_cj.run --out experiments/learn_cj``.
"""
