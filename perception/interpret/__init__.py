"""Interpretability tools over the framework's networks: look inside a model and test what it relies on.

One module per tool (Net2Vec, meaningful perturbations, adversarial promotion
and suppression, learning to scaffold, GAN dissection); :mod:`.subject` trains
the attribute network they are applied to and renders crops with exact masks.
"""
