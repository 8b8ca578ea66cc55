"""The namespace lab: FRR routers, agents, DIP hosts with servers and a client, on one host.

See docs/lab.md. The contract other parts code against::

    from lbauto.lab import Lab, LabSpec
    lab = Lab.up(LabSpec(name="t1", routers=1, agents=1, dips=3, method="static"))
    lab = Lab.load("t1")
    lab.down()              # or lbauto.lab.down("t1")
"""

from lbauto.lab.lab import Lab, MemberStatus, down, lab_names
from lbauto.lab.spec import LabAgent, LabClient, LabDip, LabRouter, LabSpec
from lbauto.lab.traffic import TrafficHandle, TrafficReport, run_traffic, start_traffic

__all__ = [
    "Lab",
    "LabAgent",
    "LabClient",
    "LabDip",
    "LabRouter",
    "LabSpec",
    "MemberStatus",
    "TrafficHandle",
    "TrafficReport",
    "down",
    "lab_names",
    "run_traffic",
    "start_traffic",
]
