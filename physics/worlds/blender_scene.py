"""Blender side of the CLEVR Blender renderer: build one scene from a spec and render it.

This file runs *inside* Blender's own Python (``bpy``), not in the project's
interpreter; :mod:`physics.worlds.clevr_blender` starts it as::

    blender -b --factory-startup -noaudio -P blender_scene.py -- SPEC.json

or, to render many scenes in one process (Blender's start-up and loading the
base scene cost about 4 s an image)::

    blender -b --factory-startup -noaudio -P blender_scene.py -- --serve

which reads one spec path per line on stdin, re-opens ``base_scene.blend`` for
each (so every scene starts from the same state and its PNGs are byte-identical
to a one-scene process's), and answers each line with one line on stdout:
``NESY_DONE`` or ``NESY_FAIL <reason>``.  An empty line or end of input ends it.

It imports nothing from the project.  The spec (JSON, written by
:func:`physics.worlds.clevr_blender.blender_spec`) names the asset folder (the
official CLEVR ``base_scene.blend``, ``shapes/`` and ``materials/``), the
camera, the lamp offsets, the objects and the two output PNGs:

* ``image``: the Cycles render (CPU, ``samples`` samples, optional denoiser,
  fixed seed and thread count);
* ``mask``: a flat-colour pass of the same geometry: every object an emission
  shader of its own code colour, the ground and the world black, lamps off,
  one sample at the pixel centre (pixel filter 0.01 px, no bounces, no dither,
  Standard view transform), so each pixel holds exactly one object's code.

How the assets are used (facts of the official CLEVR renders): each shape file
holds one object of half size 1 named after the file; it is scaled by the
object's half size, turned about z and placed at its centre.  Each material
file holds one node group named after the file with a ``Color`` input, set to
the colour's RGB / 255 with alpha 1.  The base scene brings the ground, the
backdrop, and the key, fill and back area lamps, whose positions are jittered.
"""

from __future__ import annotations

import json
import math
import sys

SHAPE_FILES = {"cube": "SmoothCube_v2", "sphere": "Sphere", "cylinder": "SmoothCylinder"}
MATERIAL_FILES = {"rubber": "Rubber", "metal": "MyMetal"}


DONE = "NESY_DONE"
FAIL = "NESY_FAIL"


def _spec_arg(argv: list[str]) -> str:
    if "--" not in argv or len(argv) <= argv.index("--") + 1:
        raise SystemExit("blender_scene.py: pass the spec file (or --serve) after '--'")
    return argv[argv.index("--") + 1]


def _append(bpy, path: str, kind: str, name: str):
    """Append the data-block ``name`` of collection ``kind`` ("objects", "node_groups") from a .blend file."""
    with bpy.data.libraries.load(path, link=False) as (src, dst):
        if name not in getattr(src, kind):
            raise SystemExit(f"{path} holds no {kind[:-1].replace('_', ' ')} named {name!r}")
        setattr(dst, kind, [name])
    return getattr(dst, kind)[0]


def _empty_material(bpy, label: str):
    """A node material holding only its output node: (material, its nodes, the output node)."""
    mat = bpy.data.materials.new(label)
    mat.use_nodes = True
    nodes = mat.node_tree.nodes
    for node in list(nodes):
        if node.type != "OUTPUT_MATERIAL":
            nodes.remove(node)
    return mat, nodes, next(n for n in nodes if n.type == "OUTPUT_MATERIAL")


def _group_material(bpy, group, rgb: list[float], label: str):
    mat, nodes, out = _empty_material(bpy, label)
    node = nodes.new("ShaderNodeGroup")
    node.node_tree = group
    node.inputs["Color"].default_value = (*rgb, 1.0)
    mat.node_tree.links.new(node.outputs["Shader"], out.inputs["Surface"])
    return mat


def _emission_material(bpy, rgb: list[float], label: str):
    mat, nodes, out = _empty_material(bpy, label)
    emit = nodes.new("ShaderNodeEmission")
    emit.inputs["Color"].default_value = (*rgb, 1.0)
    emit.inputs["Strength"].default_value = 1.0
    mat.node_tree.links.new(emit.outputs["Emission"], out.inputs["Surface"])
    return mat


def _set_material(obj, mat) -> None:
    obj.data.materials.clear()
    obj.data.materials.append(mat)


def _place_camera(mathutils, cam, spec: dict) -> None:
    eye = mathutils.Vector(spec["eye"])
    forward = (mathutils.Vector(spec["target"]) - eye).normalized()
    right = forward.cross(mathutils.Vector(spec["up"])).normalized()
    up = right.cross(forward)
    rot = mathutils.Matrix((right, up, -forward)).transposed()  # columns: camera x, y, z (looks along -z)
    cam.matrix_world = mathutils.Matrix.Translation(eye) @ rot.to_4x4()
    cam.data.type = "PERSP"
    cam.data.sensor_fit = "HORIZONTAL"
    cam.data.sensor_width = 32.0
    cam.data.lens = 16.0 / math.tan(math.radians(spec["fov_x_deg"]) / 2.0)
    cam.data.shift_x = cam.data.shift_y = 0.0


def _render(bpy, path: str) -> None:
    bpy.context.scene.render.filepath = path
    bpy.ops.render.render(write_still=True)


def render_spec(bpy, mathutils, spec: dict) -> None:
    """Build the scene of ``spec`` on a freshly opened base scene and write its two PNGs."""
    assets = spec["assets"]
    bpy.ops.wm.open_mainfile(filepath=f"{assets}/base_scene.blend")
    scene = bpy.context.scene
    render = scene.render
    render.engine = "CYCLES"
    render.resolution_x, render.resolution_y = spec["width"], spec["height"]
    render.resolution_percentage = 100
    render.pixel_aspect_x = render.pixel_aspect_y = 1.0
    render.threads_mode = "FIXED"
    render.threads = spec["threads"]
    render.image_settings.file_format = "PNG"
    render.image_settings.color_mode = "RGB"
    render.image_settings.color_depth = "8"
    render.image_settings.compression = 15
    render.use_persistent_data = False
    render.dither_intensity = 0.0
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.view_settings.exposure = 0.0
    scene.view_settings.gamma = 1.0
    cycles = scene.cycles
    cycles.device = "CPU"
    cycles.seed = spec["seed"]
    cycles.use_animated_seed = False
    _place_camera(mathutils, scene.camera, spec["camera"])
    for name, offset in spec["lamp_offsets"].items():
        lamp = bpy.data.objects[name]
        lamp.location = [c + d for c, d in zip(lamp.location, offset, strict=True)]

    groups = {m: _append(bpy, f"{assets}/materials/{f}.blend", "node_groups", f) for m, f in MATERIAL_FILES.items()}
    protos = {s: _append(bpy, f"{assets}/shapes/{f}.blend", "objects", f) for s, f in SHAPE_FILES.items()}
    objects = []
    for k, o in enumerate(spec["objects"]):
        obj = protos[o["shape"]].copy()
        obj.data = protos[o["shape"]].data.copy()
        obj.name = f"object_{k}"
        obj.location = o["location"]
        obj.rotation_euler = (0.0, 0.0, math.radians(o["rotation_deg"]))
        obj.scale = (o["scale"],) * 3
        scene.collection.objects.link(obj)
        _set_material(obj, _group_material(bpy, groups[o["material"]], o["rgb"], f"{o['material']}_{k}"))
        objects.append(obj)

    # the photograph
    cycles.samples = spec["samples"]
    cycles.use_denoising = bool(spec["denoise"])
    if spec["denoise"]:
        available = [item.identifier for item in type(cycles).bl_rna.properties["denoiser"].enum_items]
        if "OPENIMAGEDENOISE" not in available:
            raise SystemExit("this Blender build has no OpenImageDenoise denoiser; render without denoising")
        cycles.denoiser = "OPENIMAGEDENOISE"
    cycles.blur_glossy = 2.0
    cycles.transparent_max_bounces = cycles.transparent_min_bounces = 8
    cycles.max_bounces = spec["bounces"]
    _render(bpy, spec["image"])

    # the flat-colour pass: exact instance ids
    for obj, code in zip(objects, spec["mask_codes"], strict=True):
        _set_material(obj, _emission_material(bpy, code, f"{obj.name}_flat"))
    black = _emission_material(bpy, [0.0, 0.0, 0.0], "flat_black")
    for obj in scene.objects:
        if obj.type == "LIGHT":
            obj.hide_render = True
        elif obj.type == "MESH" and not obj.name.startswith("object_"):
            _set_material(obj, black)
    world = scene.world
    if world is not None and world.use_nodes:
        for node in world.node_tree.nodes:
            if node.type == "BACKGROUND":
                node.inputs["Strength"].default_value = 0.0
    cycles.samples = 1
    cycles.use_adaptive_sampling = False
    cycles.use_denoising = False
    cycles.max_bounces = cycles.diffuse_bounces = cycles.glossy_bounces = 0
    cycles.transmission_bounces = cycles.volume_bounces = 0
    cycles.transparent_max_bounces = cycles.transparent_min_bounces = 0
    cycles.filter_width = 0.01
    cycles.caustics_reflective = cycles.caustics_refractive = False
    _render(bpy, spec["mask"])


def _load(path: str) -> dict:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def serve(bpy, mathutils) -> None:
    """Render the spec named on each stdin line; answer each with one DONE/FAIL line on stdout."""
    for line in sys.stdin:
        path = line.strip()
        if not path:
            break
        try:
            render_spec(bpy, mathutils, _load(path))
        except (Exception, SystemExit) as exc:  # one bad scene is reported; the process serves the next
            reason = " ".join(str(exc).split()) or type(exc).__name__
            print(f"\n{FAIL} {reason}", flush=True)
        else:
            print(f"\n{DONE}", flush=True)


def main(argv: list[str]) -> None:
    import bpy  # only inside Blender
    import mathutils

    arg = _spec_arg(argv)
    if arg == "--serve":
        serve(bpy, mathutils)
    else:
        render_spec(bpy, mathutils, _load(arg))


if __name__ == "__main__":
    main(sys.argv)
