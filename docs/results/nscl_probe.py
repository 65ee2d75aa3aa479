"""What limits an NS-CL model's concept probe: the read, or the features it reads?

Run from the repository root; TRAIN is a split the labelled probes are fitted on,
EVAL a development split (never a held-out one)::

    PYTHONPATH=$PWD python docs/results/nscl_probe.py TRAIN_DATA TRAIN_SPLIT EVAL_DATA EVAL_SPLIT CHECKPOINT OUT.json

Every image is perceived once as ``nesy eval clevr --model nscl`` does; the proposals
are matched to the true objects by pixel position, as the probe of ``nesy eval clevr``
matches them.  Per matched object this keeps the model's own read (per attribute
group the concept of highest score: the probe ``nesy eval clevr`` reports, the
paper's concept quantization), the group's concept-space vector (the output of its
linear map, 32 numbers), the object feature that all groups' maps read (128) and the
object MLP's input (the CNNs' pooled features and the box, 260 for the shipped model).

Then, as diagnostics only (they read attribute labels, which no model here is ever
trained with), multinomial logistic regressions fitted on TRAIN's labels and scored
on EVAL: on the group's own concept space, on the object feature, on the MLP's input, and, with no
labels at all, the nearest class mean of the model's own reads on TRAIN
(re-centred concepts).  The L2 weight of each labelled probe is chosen by a
holdout of TRAIN's images (the last fifth), never on EVAL.  If a labelled linear
probe of the concept space reads far better than the model's own read, the learned
concept embeddings (where the group's boundary lies) are the limit; if it reads
about as well, the features are.
"""

from __future__ import annotations

import sys
from typing import Any

import torch
import torch.nn.functional as F

from perception.datasets.clevr import find_layout
from perception.derender.metrics import match_objects
from perception.image_io import load_image
from perception.scene_graph import load_scenes
from physics.errors import DataError
from physics.io import atomic_write_json
from reasoning.nscl.perceiver import NSCLPerceiver

GROUPS = ("color", "shape", "material", "size")
L2 = (0.0, 1e-4, 1e-3, 1e-2, 1e-1)  # the labelled probes' L2 weights, chosen on TRAIN's holdout


def extract(data, split: str, perceiver: NSCLPerceiver, limit_images: int = 0) -> dict[str, Any]:
    """Per matched object: ``feature`` [N, F], ``pooled`` [N, P] (the object MLP's input: the CNNs' pooled
    features and the box), ``space`` {group: [N, d]}, ``read``/``truth`` {group: [N] int},
    ``image`` [N] (the image's position in the split), ``shape`` [N] (the true shape's index)."""
    layout = find_layout(data, split)
    if layout.scenes is None:
        raise DataError(f"{data}: split {split!r} has no scenes file (the probe reads its true attributes)")
    scenes = sorted(load_scenes(layout.scenes), key=lambda s: s.image_index)
    if limit_images:
        scenes = scenes[:limit_images]
    model = perceiver.model
    caught: dict[str, torch.Tensor] = {}
    hooks = [model.object_mlp.register_forward_hook(
        lambda m, i, o: caught.update(feature=o.detach(), pooled=i[0].detach()))]
    for a in GROUPS:
        hooks.append(model.attribute_maps[a].register_forward_hook(
            lambda m, i, o, a=a: caught.__setitem__(a, o.detach())))
    if model.config.test_flip:
        raise DataError("nscl_probe: a model with test_flip reads every crop twice; clear it first")
    vocab = model.vocabulary
    rows: dict[str, list] = {"feature": [], "pooled": [], "image": [], "shape": [],
                             **{f"space:{a}": [] for a in GROUPS}, **{f"read:{a}": [] for a in GROUPS},
                             **{f"truth:{a}": [] for a in GROUPS}}
    try:
        for k, gt in enumerate(scenes):
            caught.clear()
            seen = perceiver(load_image(layout.images / gt.image_filename), image_index=gt.image_index,
                             image_filename=gt.image_filename)
            if not len(seen):
                continue
            pairs = match_objects(seen, gt)
            if not pairs:
                continue
            p = torch.tensor([i for i, _ in pairs])
            rows["feature"].append(caught["feature"][p])
            rows["pooled"].append(caught["pooled"][p])
            rows["image"].append(torch.full((len(pairs),), k))
            rows["shape"].append(torch.tensor([vocab["shape"].index(gt.objects[g].attribute("shape")) for _, g in pairs]))
            for a in GROUPS:
                rows[f"space:{a}"].append(caught[a][p])
                rows[f"read:{a}"].append(torch.tensor([vocab[a].index(seen.objects[i].attribute(a)) for i, _ in pairs]))
                rows[f"truth:{a}"].append(torch.tensor([vocab[a].index(gt.objects[g].attribute(a)) for _, g in pairs]))
    finally:
        for h in hooks:
            h.remove()
    out = {k: torch.cat(v) for k, v in rows.items()}
    out["images"] = len(scenes)
    return out


def fit_linear(x: torch.Tensor, y: torch.Tensor, classes: int, l2: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression (full-batch L-BFGS) on standardised ``x``: ([mean; std], [W; b])."""
    mean, std = x.mean(0), x.std(0, unbiased=False).clamp_min(1e-6)
    z = (x - mean) / std
    w = torch.zeros(x.shape[1], classes, requires_grad=True)
    b = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(z @ w + b, y) + l2 * w.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    return torch.stack([mean, std]), torch.cat([w.detach(), b.detach()[None]])


def predict(params, x: torch.Tensor) -> torch.Tensor:
    (mean, std), wb = params
    return (((x - mean) / std) @ wb[:-1] + wb[-1]).argmax(-1)


def probe_table(train: dict, dev: dict, model) -> dict[str, Any]:
    """Per group: the model's own read, re-centred concepts, labelled linear probes (see the module text)."""
    vocab = model.vocabulary
    holdout = train["image"] >= int(0.8 * train["images"])
    table: dict[str, Any] = {}
    for a in GROUPS:
        t, classes = dev[f"truth:{a}"], len(vocab[a])
        row = {"objects": len(t), "model read": float((dev[f"read:{a}"] == t).float().mean())}
        # no labels: every concept re-centred on the mean of TRAIN's objects the model reads as it (cosine);
        # a concept it never reads there keeps its learned embedding
        space, reads = F.normalize(train[f"space:{a}"], dim=-1), train[f"read:{a}"]
        learned = F.normalize(model.concepts[a].detach(), dim=-1)
        centres = torch.stack([space[reads == c].mean(0) if (reads == c).any() else learned[c] for c in range(classes)])
        row["re-centred concepts (no labels)"] = float(
            ((F.normalize(dev[f"space:{a}"], dim=-1) @ F.normalize(centres, dim=-1).T).argmax(-1) == t).float().mean())
        for name, key in (("linear probe, concept space", f"space:{a}"), ("linear probe, object feature", "feature"),
                          ("linear probe, pooled CNN features and box", "pooled")):
            x, y = train[key], train[f"truth:{a}"]
            scores = {}
            for l2 in L2:
                params = fit_linear(x[~holdout], y[~holdout], classes, l2)
                scores[l2] = float((predict(params, x[holdout]) == y[holdout]).float().mean())
            best = max(L2, key=lambda v: (scores[v], v))
            params = fit_linear(x, y, classes, best)
            row[name] = float((predict(params, dev[key]) == t).float().mean())
            row[f"{name}: l2 (holdout accuracy)"] = [best, scores]
            row[f"{name}: train accuracy"] = float((predict(params, x) == y).float().mean())
        if a == "material":
            for s, shape in enumerate(vocab["shape"]):
                on = dev["shape"] == s
                row[f"model read on {shape}"] = [int((dev[f"read:{a}"][on] == t[on]).sum()), int(on.sum())]
        table[a] = row
    return table


def main(argv: list[str]) -> int:
    if len(argv) != 6:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    torch.manual_seed(0)
    perceiver = NSCLPerceiver.from_checkpoint(argv[4])
    train = extract(argv[0], argv[1], perceiver)
    dev = extract(argv[2], argv[3], perceiver)
    table = probe_table(train, dev, perceiver.model)
    result = {"checkpoint": argv[4], "train": [argv[0], argv[1], len(train["image"])],
              "eval": [argv[2], argv[3], len(dev["image"])], "table": table}
    atomic_write_json(argv[5], result, indent=1)
    for a, row in table.items():
        print(a, {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items() if "l2" not in k})
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
