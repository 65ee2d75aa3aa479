"""NS-CL: the Neuro-Symbolic Concept Learner (Mao et al., ICLR 2019, arXiv 1904.12584).

Visual concepts learned from images paired with questions and answers, with no
attribute label: object features (:mod:`reasoning.nscl.model`) meet concept
embeddings in the quasi-symbolic executor (:mod:`reasoning.executor.soft`),
trained with a curriculum (:mod:`reasoning.nscl.train`) on what
:mod:`reasoning.nscl.data` reads.
"""

from reasoning.nscl.data import QASet, load_split
from reasoning.nscl.model import ConceptConfig, ConceptLearner
from reasoning.nscl.train import NSCLTrainConfig, evaluate_nscl, load_nscl, save_nscl, train_nscl

__all__ = [
    "ConceptConfig",
    "ConceptLearner",
    "QASet",
    "load_split",
    "NSCLTrainConfig",
    "train_nscl",
    "evaluate_nscl",
    "save_nscl",
    "load_nscl",
]
