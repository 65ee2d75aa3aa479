"""Audio for the perception layer: spectrograms of the worlds' sounds and sounding-object localisers."""
