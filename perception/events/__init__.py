"""Models of events over time in clips: the Temporal Shift Module (:mod:`perception.events.tsm`)."""
