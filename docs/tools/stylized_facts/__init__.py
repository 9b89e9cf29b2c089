"""The builder of ``docs/stylized_facts.md``: the runs (:mod:`.runs`), figures (:mod:`.plots`),
tables (:mod:`.tables`), model checks (:mod:`.checks`) and the page (:mod:`.report`).

The measurements themselves are :mod:`mmgym.analysis`; this package only turns them into the
page. It is not installed with mmgym: ``python scripts/stylized_facts.py`` runs it.
"""
