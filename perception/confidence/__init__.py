"""Confidence of perception: calibration and selective prediction (:mod:`perception.confidence.selective`)."""
