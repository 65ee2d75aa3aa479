"""Geometry-aware layers: learnable polyphase sampling (shift invariance) and warped convolutions (rotation)."""
