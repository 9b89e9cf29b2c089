"""Cartea, Jaimungal & Penalva (2015, ch. 10): the exact optimum against simulation and the
other closed forms."""
