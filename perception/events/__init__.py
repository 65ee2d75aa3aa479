"""Models of events over time: the Temporal Shift Module (:mod:`~perception.events.tsm`), C-TCN
(:mod:`~perception.events.ctcn`) and P-GCN (:mod:`~perception.events.pgcn`) over collision videos
(:mod:`~perception.events.collision_videos`)."""
