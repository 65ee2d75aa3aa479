"""Keypoint models: AutoLink (keypoints linked by a learned graph)."""
