"""NS-VQA derendering: an image to a SceneGraph (Yi et al., 2018, arXiv 1810.02338).

* :mod:`~perception.derender.proposals` -- object proposals with instance masks
  (a compact centre/offset U-Net in place of Mask R-CNN);
* :mod:`~perception.derender.attributes` -- shape, colour, material, size and
  centre of each proposal from its crop and mask;
* :mod:`~perception.derender.camera` -- camera calibration and back-projection;
* :mod:`~perception.derender.derenderer` -- the pipeline and its checkpoints;
* :mod:`~perception.derender.metrics` -- matching and perception scores;
* :mod:`~perception.derender.training` -- ``nesy train derender``, running
  :mod:`~perception.derender.calibration` (the camera),
  :mod:`~perception.derender.arrays` (training crops and masks),
  :mod:`~perception.derender.trainers` (both networks, on the shared
  :class:`physics.training.TrainLoop`) and :mod:`~perception.derender.provenance`
  (the command that reproduces a checkpoint); options in
  :mod:`~perception.derender.train_config`.
"""

from perception.derender.attributes import AttributeConfig, AttributeNet, crop_objects
from perception.derender.camera import (
    backproject_to_plane,
    fit_projection,
    ground_directions,
    project,
)
from perception.derender.data import (
    DerenderSample,
    load_derender_folder,
    load_image,
    load_instance_mask,
)
from perception.derender.derenderer import (
    DEFAULT_CHECKPOINT,
    Derenderer,
    load_default_derenderer,
    load_derenderer,
    mask_to_rle,
    rle_to_mask,
    save_derenderer,
)
from perception.derender.metrics import match_objects, perception_metrics
from perception.derender.proposals import (
    ProposalConfig,
    ProposalNet,
    decode_instances,
    proposal_targets,
)

__all__ = [
    "AttributeConfig",
    "AttributeNet",
    "crop_objects",
    "backproject_to_plane",
    "fit_projection",
    "ground_directions",
    "project",
    "DerenderSample",
    "load_derender_folder",
    "load_image",
    "load_instance_mask",
    "DEFAULT_CHECKPOINT",
    "Derenderer",
    "load_default_derenderer",
    "load_derenderer",
    "mask_to_rle",
    "rle_to_mask",
    "save_derenderer",
    "match_objects",
    "perception_metrics",
    "ProposalConfig",
    "ProposalNet",
    "decode_instances",
    "proposal_targets",
]
