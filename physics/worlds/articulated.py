"""Articulated pybullet chains seen from above: images and the true joint positions (AutoLink's data).

A chain (or, with branching ``parents``, a kinematic tree) is a pybullet
multibody: a fixed base (a red disc, so the root can be told from the free
end) and capsule links on revolute joints about the vertical axis, so it moves
in the ground plane.  Each sample draws the base position, its yaw and every
joint angle from a seeded generator, sets them with ``resetJointState``, reads
the link frames back from pybullet's forward kinematics, and renders the
scene with the TinyRenderer through a camera looking straight down.  The
background (pixels of no body) is set to black from the segmentation buffer.

Points are numbered from the root: point 0 is the base, point ``l + 1`` the
free end of link ``l``; link ``l`` starts at point ``parents[l]``.  The
kinematic tree's edges are ``(parents[l], l + 1)``.

Shapes (N samples, P = links + 1 points, image side S)::

    images      uint8 [N, S, S, 3]
    points      float32 [N, P, 2]      pixel coordinates (u right, v down) of each point
    tree_edges  tuple of P - 1 pairs (parent point, child point)

Reference: the articulated objects AutoLink learns from (He, Wandt and Rhodin,
"AutoLink: Self-supervised Learning of Human Skeletons and Object Outlines by
Linking Keypoints", NeurIPS 2022, arXiv 2205.10636).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from physics.config_types import check_field_types
from physics.errors import ConfigError
from physics.worlds._pybullet import BulletClient, pybullet, quiet_c_output
from physics.worlds.camera import Camera

__all__ = ["ChainConfig", "ChainSamples", "ArticulatedChain", "render_chains"]

_BASE_RGBA = (0.9, 0.15, 0.1, 1.0)  # red base: the root is visible, so keypoint order is identifiable
_LINK_RGBA = (0.85, 0.85, 0.8, 1.0)


@dataclass(frozen=True)
class ChainConfig:
    """Geometry of the articulated body and how each sample is drawn.

    Args:
        parents: For each link, the point it starts at (0 = the base; point k > 0 is the end of link k - 1).
            ``(0, 1, 2, 3)`` is a four-link chain; ``(0, 1, 2, 1)`` branches at point 1.
        link_length: Length of every link (world units).
        link_radius: Capsule radius of the links.
        base_radius: Radius of the base disc.
        joint_range_deg: Each joint angle is uniform in [-range, range] degrees.
        base_jitter: The base position is uniform in [-jitter, jitter]^2.
        view_half: Half the side of the square of the ground plane the camera sees.
        image_size: Side of the square images in pixels.
    """

    parents: tuple[int, ...] = (0, 1, 2, 3)
    link_length: float = 0.35
    link_radius: float = 0.07
    base_radius: float = 0.13
    joint_range_deg: float = 80.0
    base_jitter: float = 0.1
    view_half: float = 1.3
    image_size: int = 64

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        if not self.parents:
            raise ConfigError("ChainConfig.parents must name at least one link")
        for link, parent in enumerate(self.parents):
            if not 0 <= parent <= link:
                raise ConfigError(f"ChainConfig.parents[{link}] = {parent}: a link must start at the base (0) "
                                  f"or at the end of an earlier link (1..{link})")
        if min(self.link_length, self.link_radius, self.base_radius, self.view_half) <= 0:
            raise ConfigError("ChainConfig lengths (link_length, link_radius, base_radius, view_half) must be > 0")
        if not 0 < self.joint_range_deg <= 180:
            raise ConfigError(f"ChainConfig.joint_range_deg must be in (0, 180], got {self.joint_range_deg}")
        if self.image_size < 8:
            raise ConfigError(f"ChainConfig.image_size must be >= 8, got {self.image_size}")

    @property
    def num_points(self) -> int:
        """Points of the tree: the base and the end of each link."""
        return len(self.parents) + 1

    @property
    def tree_edges(self) -> tuple[tuple[int, int], ...]:
        """The kinematic tree: (start point, end point) of each link."""
        return tuple((p, link + 1) for link, p in enumerate(self.parents))


@dataclass(frozen=True)
class ChainSamples:
    """Rendered samples and their truth (shapes in the module docstring)."""

    images: np.ndarray
    points: np.ndarray
    angles: np.ndarray  # float32 [N, links + 1]: base yaw, then each joint angle (radians)
    tree_edges: tuple[tuple[int, int], ...]
    image_size: int

    def __len__(self) -> int:
        return len(self.images)


class ArticulatedChain:
    """One pybullet client holding the articulated body; :meth:`sample` poses and renders it.

    >>> chain = ArticulatedChain(ChainConfig(image_size=32))
    >>> image, points, _ = chain.sample(np.random.default_rng(0))
    >>> image.shape, points.shape
    ((32, 32, 3), (5, 2))
    """

    def __init__(self, config: ChainConfig = ChainConfig()) -> None:
        self.config = config
        side = config.image_size
        distance = 4.0
        fov = 2.0 * math.degrees(math.atan(config.view_half / distance))
        self.camera = Camera(eye=(0.0, 0.0, distance), target=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0),
                             fov_x_deg=fov, width=side, height=side, near=0.5, far=10.0)
        with quiet_c_output():  # pybullet prints "argv[0]=" on connect; keep the CLI's output clean
            self._pb = BulletClient(connection_mode=pybullet.DIRECT)
        self._body = self._build()

    def _build(self) -> int:
        c, pb = self.config, self._pb
        base_vis = pb.createVisualShape(pybullet.GEOM_CYLINDER, radius=c.base_radius, length=0.02,
                                        rgbaColor=_BASE_RGBA)
        # a capsule lies along its local z axis: turn it onto the link's x axis, centred half-way along
        along_x = pybullet.getQuaternionFromEuler((0.0, math.pi / 2.0, 0.0))
        link_vis = pb.createVisualShape(pybullet.GEOM_CAPSULE, radius=c.link_radius,
                                        length=c.link_length, rgbaColor=_LINK_RGBA,
                                        visualFramePosition=(c.link_length / 2.0, 0.0, 0.0),
                                        visualFrameOrientation=along_x)
        links = len(c.parents)
        return pb.createMultiBody(
            baseMass=0.0, baseCollisionShapeIndex=-1, baseVisualShapeIndex=base_vis,
            basePosition=(0.0, 0.0, 0.0),
            linkMasses=[1.0] * links,
            linkCollisionShapeIndices=[-1] * links,
            linkVisualShapeIndices=[link_vis] * links,
            # link frames sit at their joints; a child's joint is at the end of its parent link
            linkPositions=[(0.0, 0.0, 0.02) if p == 0 else (c.link_length, 0.0, 0.0) for p in c.parents],
            linkOrientations=[(0.0, 0.0, 0.0, 1.0)] * links,
            linkInertialFramePositions=[(0.0, 0.0, 0.0)] * links,
            linkInertialFrameOrientations=[(0.0, 0.0, 0.0, 1.0)] * links,
            linkParentIndices=list(c.parents),  # pybullet's 0 is the base, k is link k - 1: point k's owner
            linkJointTypes=[pybullet.JOINT_REVOLUTE] * links,
            linkJointAxis=[(0.0, 0.0, 1.0)] * links,
        )

    def pose(self, base_xy: tuple[float, float], angles: np.ndarray) -> np.ndarray:
        """Set the base position and yaw (``angles[0]``) and the joint angles (``angles[1:]``).

        Returns:
            float64 [P, 3]: world position of each point, read from pybullet's forward kinematics.
        """
        c, pb = self.config, self._pb
        quat = pybullet.getQuaternionFromEuler((0.0, 0.0, float(angles[0])))
        pb.resetBasePositionAndOrientation(self._body, (float(base_xy[0]), float(base_xy[1]), 0.0), quat)
        for link, angle in enumerate(angles[1:]):
            pb.resetJointState(self._body, link, float(angle))
        points = [np.array([base_xy[0], base_xy[1], 0.02])]
        for link in range(len(c.parents)):
            state = pb.getLinkState(self._body, link, computeForwardKinematics=True)
            frame_pos, frame_quat = np.asarray(state[4]), state[5]
            rot = np.asarray(pybullet.getMatrixFromQuaternion(frame_quat)).reshape(3, 3)
            points.append(frame_pos + rot @ np.array([c.link_length, 0.0, 0.0]))
        return np.stack(points)

    def render(self) -> np.ndarray:
        """The current pose from above: uint8 [S, S, 3], background black."""
        side = self.config.image_size
        view, proj = self.camera.pybullet_matrices()
        _, _, rgba, _, seg = self._pb.getCameraImage(side, side, view, proj, renderer=pybullet.ER_TINY_RENDERER,
                                                     lightDirection=(0.3, 0.4, 1.0))
        rgb = np.asarray(rgba, dtype=np.uint8).reshape(side, side, 4)[..., :3].copy()
        rgb[np.asarray(seg).reshape(side, side) < 0] = 0
        return rgb

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Draw a pose from ``rng``, render it: (image uint8 [S, S, 3], points float32 [P, 2], angles [L + 1])."""
        c = self.config
        base_xy = rng.uniform(-c.base_jitter, c.base_jitter, 2)
        limit = math.radians(c.joint_range_deg)
        angles = np.concatenate([rng.uniform(-math.pi, math.pi, 1), rng.uniform(-limit, limit, len(c.parents))])
        world = self.pose((float(base_xy[0]), float(base_xy[1])), angles)
        pixels = self.camera.project(world)[:, :2].astype(np.float32)
        return self.render(), pixels, angles.astype(np.float32)

    def close(self) -> None:
        """Disconnect the pybullet client."""
        self._pb.disconnect()


def render_chains(seeds: Iterable[int], config: ChainConfig = ChainConfig()) -> ChainSamples:
    """One sample per seed (deterministic for a seed), stacked (shapes in the module docstring)."""
    chain = ArticulatedChain(config)
    try:
        drawn = [chain.sample(np.random.default_rng(int(s))) for s in seeds]
    finally:
        chain.close()
    if not drawn:
        raise ConfigError("render_chains needs at least one seed")
    images, points, angles = (np.stack(x) for x in zip(*drawn, strict=True))
    return ChainSamples(images, points, angles, config.tree_edges, config.image_size)

