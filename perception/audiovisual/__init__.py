"""Audio-visual perception: models that learn from the sound and the frames of a clip together."""
