"""Avellaneda & Stoikov (2008), section 4: the simulation table."""
