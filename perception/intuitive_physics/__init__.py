"""Intuitive physics from pixels on the heightfield world (:mod:`physics.worlds.heightfield`).

* :mod:`~perception.intuitive_physics.tracker`: Ehrhardt et al., ACCV 2018 (arXiv 1805.05086):
  a ball's position learned without labels from causality and equivariance, and a predictor trained
  on the extracted positions (bench ``intuitive-physics``).
* :mod:`~perception.intuitive_physics.extrapolation`: Ehrhardt et al., CVIU 2019: a recurrent
  predictor of future positions with variances on heightfields never seen in training
  (bench ``heightfield-extrapolation``).
"""
