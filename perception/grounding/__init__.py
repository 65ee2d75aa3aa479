"""Grounding: joint image / scene-description embeddings with pyramid alignment (:mod:`~perception.grounding.joint_embedding`)."""
