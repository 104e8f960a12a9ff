"""Local Ray clusters that merlin starts, observes and stops (see docs/ray.md)."""
