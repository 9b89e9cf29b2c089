"""Analysis of simulated markets: stylized facts of returns, order flow, funding and cascades.

The names of :mod:`mmgym.analysis.stylized_facts` (its ``__all__``) are available here. The
package needs pandas (``pip install 'mmgym[train]'``); without it, the import says so.
"""

from mmgym.extras import extra_needed

with extra_needed("mmgym.analysis"):
    from mmgym.analysis import stylized_facts
    from mmgym.analysis.stylized_facts import *  # noqa: F403

__all__ = stylized_facts.__all__
