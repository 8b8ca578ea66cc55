"""The pure part of lbauto: typed values, plans, intent and the planner. No I/O."""
