"""Interpretability tools over the framework's networks: GAN dissection, Net2Vec, meaningful perturbations, adversarial promotion and suppression, learning to scaffold."""
