"""Models of events over time: the Temporal Shift Module (:mod:`~perception.events.tsm`) and C-TCN (:mod:`~perception.events.ctcn`)."""
