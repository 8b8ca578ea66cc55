"""NAPALM driver for FRRouting (``napalm.get_network_driver("frr")``).

Only the driver class is exported: NAPALM picks the first NetworkDriver subclass it finds here.
"""

from napalm_frr.frr import FRRDriver

__all__ = ["FRRDriver"]
