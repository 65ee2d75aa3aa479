"""Typed, frozen model configs and named presets per world.

One :class:`ModelConfig` describes every simulator here; the model *name*
(``in``, ``propnet``, ``dpinet``, see :data:`physics.models.MODELS`) picks the
processor, the config its sizes.  Each world the models learn has one
:class:`WorldPreset` in :data:`PRESETS` (its graph radius, history, roots and
training noise; the shipped checkpoints were trained with them), registered
here with :func:`register_preset`; :func:`physics.models.preset` combines a
world's preset with a model's own defaults, and ``dataclasses.replace`` changes
single fields.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from physics.config_types import check_field_types
from physics.errors import ConfigError
from physics.graph.builder import GraphConfig
from physics.models.contact import check_contact
from physics.registry import Registry

__all__ = [
    "ModelConfig",
    "WorldPreset",
    "PRESETS",
    "register_preset",
    "apply_overrides",
    "config_to_dict",
    "config_from_dict",
]

PREDICTIONS = ("acceleration", "velocity")
STAGE_ORDERS = ("hierarchy_first", "leaves_first")


@dataclass(frozen=True)
class ModelConfig:
    """Sizes and switches of an encode-process-decode simulator.

    Attributes:
        dim: Spatial dimensions D of the world.
        node_attr_dim: Static node features A (``Trajectory.node_attr``).
        edge_attr_dim: Features of fixed relations B (``Trajectory.edge_attr``).
        hidden: Width of every latent and MLP layer.
        mlp_layers: Hidden layers per MLP.
        propagation_steps: L, propagation steps among leaves.  The Interaction
            Network is the one-step case (L = 1); the presets give PropNet and
            DPI-Net L = 3, and L = 5 on the 5-ball cradle.
        root_steps: DPI-Net root -> root propagation steps.
        stage_order: DPI-Net stage order.  ``leaves_first`` is the paper's and its
            reference code's: leaf <-> leaf (L steps), leaf -> root, root -> root,
            root -> leaf, then decode, so the roots gather what the leaves learned
            from their contacts and broadcast it.  ``hierarchy_first`` runs the
            three hierarchy stages on the encoded leaves and then the L leaf steps
            (this repository's first order; the default, so that checkpoints
            saved before the field existed keep their meaning).
        share_weights: One processor for every step (PropNet) or one per step (GNS option).
        noise_std: Std of GNS random-walk noise added to the input positions in training
            (scene units, at the last history frame).
        predict: ``acceleration`` (GNS, integrated twice) or ``velocity``.
        shape_matching: DPI-Net head: move each object's particles by one rigid motion.
        partially_observed: PropNet's partially observable mode (see ``base.py``).
        contact: A footprint of :data:`physics.models.contact.FOOTPRINTS` (``clevrer``): every
            edge between objects gets the gap between their footprints, that gap one frame
            later at the current velocities, and the approach speed along the centre line
            as features (:func:`physics.models.contact.contact_features`); ``''`` (the
            default): none.
        wall_projection: Part of the model in a particle world with wall markers: its rollouts
            put every predicted particle back inside the container the markers outline
            (:func:`physics.models.rollout.project_into_container`), and ``nesy bench dynamics``
            applies it to this model unless ``--wall-projection`` / ``--no-wall-projection``
            forces one setting for every model.  Off by default, so checkpoints saved before
            the field existed load and roll out unchanged; no effect on worlds without markers.
        graph: How states become graphs (history, radius, roots).
    """

    dim: int = 3
    node_attr_dim: int = 0
    edge_attr_dim: int = 0
    hidden: int = field(default=64, metadata={"help": "latent width"})
    mlp_layers: int = 2
    propagation_steps: int = 3
    root_steps: int = 2
    stage_order: str = "hierarchy_first"
    share_weights: bool = True
    noise_std: float = 0.0
    predict: str = "acceleration"
    shape_matching: bool = False
    partially_observed: bool = False
    contact: str = ""
    wall_projection: bool = False
    graph: GraphConfig = field(default_factory=GraphConfig)

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        if self.predict not in PREDICTIONS:
            raise ConfigError(f"ModelConfig.predict must be one of {', '.join(PREDICTIONS)}, got {self.predict!r}")
        if self.stage_order not in STAGE_ORDERS:
            raise ConfigError(f"ModelConfig.stage_order must be one of {', '.join(STAGE_ORDERS)}, got {self.stage_order!r}")
        for name in ("dim", "hidden", "mlp_layers", "propagation_steps", "root_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"ModelConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.noise_std < 0:
            raise ConfigError(f"ModelConfig.noise_std must be >= 0, got {self.noise_std}")
        check_contact(self.contact)


@dataclass(frozen=True)
class WorldPreset:
    """What the learned models need to know about one world: its graph and training noise.

    :meth:`DynamicsModel.preset_config <physics.models.base.DynamicsModel.preset_config>` turns
    it into each model's :class:`ModelConfig`.

    Attributes:
        history: Past velocities fed to the model.
        radius: Neighbour radius (scene units); ``None``: fixed relations only.
        roots: DPI-Net root nodes per object (k-means clusters of its particles).
        steps: Propagation steps L of the multi-step processors (PropNet, DPI-Net).
        noise: GNS random-walk input noise std (scene units, last input frame).
        rigid: The objects are rigid bodies: DPI-Net adds its shape-matching head.
        dpinet: ``(field, value)`` pairs, in :func:`apply_overrides`'s names, that DPI-Net
            alone gets on this world on top of the above: the paper's per-scene settings where
            they differ from the other models' (``fluidfall``: a fluid gets no
            hierarchy, and two propagation steps).
    """

    history: int = 2
    radius: float | None = None
    roots: int = 1
    steps: int = 3
    noise: float = 0.0
    rigid: bool = False
    dpinet: tuple[tuple[str, Any], ...] = ()

    def graph(self, roots: int = 0) -> GraphConfig:
        """The :class:`GraphConfig` of this world with ``roots`` root nodes per object."""
        return GraphConfig(history=self.history, radius=self.radius, roots_per_instance=roots)


PRESETS: Registry[WorldPreset] = Registry("world preset")


def register_preset(world: str, preset: WorldPreset, *, help: str = "") -> WorldPreset:
    """Register the learned models' preset for ``world`` (the name ``nesy data dynamics`` used)."""
    if not isinstance(preset, WorldPreset):
        raise ConfigError(f"register_preset expects a WorldPreset for world {world!r}, got {type(preset).__name__}")
    return PRESETS.register(world, preset, help=help)


# Per-world defaults.  Radii are in the worlds' scene units (metres), a little
# above the centre distance of touching bodies (on the cradle below twice it, so a
# ball sees its direct neighbours only and one hop cannot cross the chain).  GNS input
# noise (std of the last input frame, m) was chosen by the full-rollout error on the
# *valid* split (seed 0, split valid), never on a test split: cradle (30 Hz) 1.5e-3
# (PropNet: 9.1e-5 against 2.0e-4 at 5e-4 and 1.3e-4 at 3e-3; the shipped IN uses its
# own best, 3e-3); rope 1e-3 with 3-step rollout training on 200 train trajectories
# (PropNet's valid best on them: 2.9e-3 against 3.9e-3 at 3e-4; on 40, 3e-4 ranked first
# on valid but drifted off on held-out episodes); boxes keeps 5e-6 (not re-tuned).
# The README lists every setting tried.
register_preset(
    "cradle",
    # L = 5 lets an impact cross the 5-ball cradle (4 contacts) within one step;
    # balls 0.101 apart centre to centre; a ball moves < 0.045 per 30 Hz frame
    WorldPreset(history=2, radius=0.15, roots=1, steps=5, noise=1.5e-3),
    help="radius 0.15, L = 5",
)
register_preset(
    "rope",
    # bead radius 0.02 + obstacle radius 0.05 = 0.07 at contact
    WorldPreset(history=2, radius=0.08, roots=4, steps=3, noise=1e-3),
    help="radius 0.08, 4 DPI-Net roots",
)
register_preset(
    "boxes",
    # box sides 0.04-0.08 m, pusher radius 0.03: centres of touching bodies lie within ~0.11
    WorldPreset(history=2, radius=0.12, roots=1, steps=3, noise=5e-6, rigid=True),
    help="radius 0.12, rigid boxes",
)
# The 2-D particle worlds (Taichi MPM): particles start 1/128 m apart, wall markers 1/64 m;
# radius 0.015 m gives a fluid particle about 10 neighbours and always a wall marker near a wall.
# The noise (3e-4 m, about 4% of the spacing) was not tuned.  Every object with an instance id
# there is rigid (boxes, walls, containers, grippers): DPI-Net shape-matches them all.
# fluidfall's falling fluid moves up to 0.036 m per recorded frame (99th percentile 0.020 m,
# training split): at 0.015 m a particle meets no floor marker before it is through the floor.
# The shipped fluidfall IN was trained with --set graph.radius=0.025, at which the fluid stays in the
# tank, where every model at 0.015 m loses it through the floor (docs/results/particles.md, "fluidfall,
# session 3"); the preset stays 0.015 m because the shipped fluidfall GNS was trained with it (DPI-Net: below).
for _world in ("boxbath", "fluidshake", "ricegrip"):
    register_preset(
        _world,
        WorldPreset(history=2, radius=0.015, roots=1, steps=3, noise=3e-4, rigid=True),
        help="radius 0.015 m, L = 3, rigid bodies and walls shape-matched",
    )
# fluidfall holds fluid and a static tank only.  DPI-Net gets the paper's FluidFall setting
# (Li et al. 2019: a fluid has no hierarchy; the reference training script defaults to two
# propagation steps) on the shipped IN's radius, 0.025 m: no root for the tank (its markers are
# given in a rollout; a root summing ~100 of them rewrote every marker's latent first), no shape
# matching (no rigid body moves), L = 2 (docs/results/particles.md, "fluidfall, session 8"); the
# other models keep the shared preset, which the shipped GNS was trained from.  The shipped IN and
# DPI-Net add --set graph.wall_box=0.04 --set noise_std=0.001 (and the IN graph.radius=0.025): the
# walls' signed distances keep the fluid in the tank (docs/results/particles.md, "fluidfall, session 10").  Each
# checkpoint's meta["command"] holds its full command; the preset is left as it is so that the
# GNS and older recordings stay reproducible.
register_preset(
    "fluidfall",
    WorldPreset(history=2, radius=0.015, roots=1, steps=3, noise=3e-4, rigid=True,
                dpinet=(("graph.radius", 0.025), ("graph.roots_per_instance", 0), ("propagation_steps", 2),
                        ("shape_matching", False))),
    help="radius 0.015 m, L = 3; DPI-Net: the paper's FluidFall (radius 0.025 m, no hierarchy, L = 2)",
)
register_preset(
    "clevrer",
    # CLEVRER objects (physics.models.video_propnet): every pair related (<= 6 objects), state (x, y, theta);
    # small objects touch at centre distances 0.7-1.0; launches are actions
    WorldPreset(history=2, radius=None, roots=1, steps=3, noise=1e-3),
    help="CLEVRER object states: all pairs related, L = 3",
)
register_preset(
    "toy",
    WorldPreset(history=2, radius=None, roots=2, steps=3, noise=0.0),
    help="fixed relations only, for small synthetic worlds and the tests",
)


def apply_overrides(cfg: ModelConfig, overrides: dict[str, Any]) -> ModelConfig:
    """``cfg`` with ModelConfig fields (``hidden=128``) and ``graph.`` fields (``graph.radius=0.2``) replaced.

    Raises:
        ConfigError: unknown field (lists the allowed ones).
    """
    graph_over = {k.split(".", 1)[1]: v for k, v in overrides.items() if k.startswith("graph.")}
    model_over = {k: v for k, v in overrides.items() if not k.startswith("graph.")}
    names = {f.name for f in dataclasses.fields(ModelConfig)}
    gnames = {f.name for f in dataclasses.fields(GraphConfig)}
    unknown = sorted(set(model_over) - names) + sorted("graph." + k for k in set(graph_over) - gnames)
    if unknown:
        raise ConfigError(
            f"unknown model config field(s) {unknown}; allowed: {sorted(names - {'graph'})} "
            f"and graph.{{{', '.join(sorted(gnames))}}}"
        )
    for prefix, cls, over in (("", ModelConfig, model_over), ("graph.", GraphConfig, graph_over)):
        hints = typing.get_type_hints(cls)
        for key, value in over.items():
            _check_override_type(prefix + key, hints[key], value)
    if graph_over:
        model_over["graph"] = dataclasses.replace(cfg.graph, **graph_over)
    return dataclasses.replace(cfg, **model_over) if model_over else cfg


def _check_override_type(name: str, hint: Any, value: Any) -> None:
    """ConfigError unless ``value`` fits the field's type (``--set`` values arrive as JSON or text),
    so that ``--set graph.radius=nan`` is named here instead of failing deep inside as a TypeError."""
    allowed = set(typing.get_args(hint)) if typing.get_origin(hint) in (typing.Union, types.UnionType) else {hint}
    numeric = allowed & {int, float}
    if value is None and type(None) in allowed:
        return
    if numeric and not (isinstance(value, bool) and bool not in allowed):
        if isinstance(value, (int, float)) and (float in numeric or isinstance(value, int)):
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"--set {name}={value!r}: must be a finite number")
            return
        kind = "an integer" if numeric == {int} else "a number"
        raise ConfigError(f"--set {name}={value!r}: must be {kind}")
    if bool in allowed and not isinstance(value, bool):
        raise ConfigError(f"--set {name}={value!r}: must be true or false")
    if str in allowed and not isinstance(value, str):
        raise ConfigError(f"--set {name}={value!r}: must be text")


def config_to_dict(cfg: ModelConfig) -> dict[str, Any]:
    """Plain dict (JSON and ``weights_only`` checkpoint friendly).

    The wall and contact features' fields are left out while they are off, so the configs of
    models saved before they existed compare equal (``--init``, resume)."""
    d = dataclasses.asdict(cfg)
    if not d["contact"]:
        del d["contact"]
    if not d["graph"]["wall_clip"] and not d["graph"]["wall_box"]:
        del d["graph"]["wall_column"]
    for key in ("wall_clip", "wall_box"):
        if not d["graph"][key]:
            del d["graph"][key]
    return d


def config_from_dict(d: dict[str, Any]) -> ModelConfig:
    """Inverse of :func:`config_to_dict`; unknown keys raise ConfigError."""
    d = dict(d)
    graph = GraphConfig(**d.pop("graph", {}))
    names = {f.name for f in dataclasses.fields(ModelConfig)}
    extra = sorted(set(d) - names)
    if extra:
        raise ConfigError(f"model config has unknown fields {extra}; allowed: {sorted(names)}")
    return ModelConfig(**d, graph=graph)
