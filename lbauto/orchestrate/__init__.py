"""Running plans against live agents and routers: executor, journal and the apply lock."""
