"""How one job runs: the leaf of cronhost.

A job kind takes a plain request and returns an :class:`Outcome`; it knows
nothing of config files, stores or APScheduler.
"""
