"""Router push: open NAPALM drivers, diff, commit with commit-confirm, verify, roll back.

The function API the orchestrator uses lives in :mod:`lbauto.push.pipeline`
(:func:`~lbauto.push.pipeline.push`, :class:`~lbauto.push.pipeline.RouterFleet`).
"""
