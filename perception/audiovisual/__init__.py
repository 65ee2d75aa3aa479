"""Audio-visual perception: which pixels make which sound, separation of mixtures, correspondence and localisation."""
