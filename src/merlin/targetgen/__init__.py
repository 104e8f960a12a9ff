"""TargetGen: the planner (specs in, plan out) and the executor that drives a
plan's tasks to completion through probes, operator gates and prompts."""
