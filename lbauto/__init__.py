"""lbauto: make a software load balancer step aside for single-DIP VIPs.

Data flows one way: inventory files -> validated model -> pure planner -> executor ->
agents and routers. See docs/ and DESIGN for the vocabulary (VIP, DIP, mode, bypass, ...).
"""

__version__ = "0.1.0"
