"""Ways to train any model: CurveBall, dataset distillation, residual adapters, Once-for-All.

Each module is one method with its ``nesy bench perception`` entry; import the
module you need (``from perception.training_methods.curveball import CurveBall``).
"""
