"""The video PropNet package re-exports what callers imported from the single module it was."""

from __future__ import annotations

import importlib

import physics.models.video_propnet as vp

MODULES = ("config", "trajectories", "spin", "starts", "collisions", "free_slide", "heading_hold", "rest_hold",
           "augment", "rollout", "dynamics", "training")


def test_every_listed_name_is_the_object_its_own_module_defines():
    """A re-export is the same object, so a patch or a check on either name sees the one the code uses."""
    owners = {m: importlib.import_module(f"physics.models.video_propnet.{m}") for m in MODULES}
    for name in vp.__all__:
        obj = getattr(vp, name)
        homes = [m for m, mod in owners.items() if name in vars(mod) and vars(mod)[name] is obj]
        assert homes, name
    assert vp._Carry is owners["rollout"]._Carry and vp._make_trajectory is owners["trajectories"]._make_trajectory


def test_the_shipped_checkpoint_path_still_points_at_the_file():
    """The path moved one folder down with the module; the checkpoint stayed in physics/models/checkpoints."""
    assert vp.SHIPPED_CHECKPOINT.is_file()
    assert vp.SHIPPED_CHECKPOINT.parent.parent.name == "checkpoints"


def test_the_propnet_provider_is_registered_by_the_package():
    from physics.video_dynamics import VIDEO_DYNAMICS

    assert "propnet" in VIDEO_DYNAMICS
