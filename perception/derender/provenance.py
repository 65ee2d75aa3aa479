"""Provenance of a finished derenderer: the commands (and earlier checkpoints) that reproduce it.

A derenderer may come from one ``--stage all`` run, from two ``--stage`` runs
finished in either order, or start from earlier derenderers (``--proposal-from``,
``--proposal-init``, ``--attribute-init``); its metadata's ``command`` chains
every command that must run, in order, joined by ``&&``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from perception.derender.train_config import DerenderTrainConfig, command_line
from physics.errors import ConfigError, DataError

__all__ = ["other_stage", "based_on"]


def other_stage(
    config: DerenderTrainConfig, command: str, n_scenes: int, out: Path
) -> tuple[dict[str, Any], DerenderTrainConfig | None]:
    """Metadata of a derenderer finished by one stage run: both stages' commands, data and wall times.

    The stage that finished first left ``OUT/summary_<stage>.json``; the
    returned ``command`` reruns the two stages in the order they ran (the
    finishing run calibrates the camera on its own scenes, so order matters).
    Also returns that first run's config (None when the other network came
    from elsewhere), whose own starting checkpoints :func:`based_on` records.
    """
    other = "attribute" if config.stage == "proposal" else "proposal"
    path = out / f"summary_{other}.json"
    if not path.is_file():  # the other network came from elsewhere: say only what ran here
        return {f"{config.stage}_scenes": n_scenes}, None
    try:
        first = json.loads(path.read_text(encoding="utf-8"))
        first_config = DerenderTrainConfig(**first["config"])
        other_command = first.get("command") or command_line(first_config)
        record: dict[str, Any] = {f"{other}_scenes": int(first["n_train_scenes"]), f"{config.stage}_scenes": n_scenes}
    except (OSError, ValueError, KeyError, TypeError, ConfigError) as exc:
        raise DataError(f"{path}: unreadable stage summary ({exc}); delete it or rerun that stage") from None
    if f"{other}_wall_s" in first:
        record[f"{other}_wall_s"] = first[f"{other}_wall_s"]
    record["command"] = f"{other_command} && {command}"
    return record, first_config


def based_on(configs: Sequence[DerenderTrainConfig], command: str) -> dict[str, Any]:
    """Metadata of a run started from earlier derenderers: their commands run first.

    ``command`` becomes ``<earlier command> && <this command>`` for each distinct
    checkpoint named by ``--proposal-from`` / ``--proposal-init`` /
    ``--attribute-init`` in any of ``configs`` (both stage runs of a derenderer
    trained by two ``--stage`` runs).
    """
    named = (p for c in configs for p in (c.proposal_from, c.proposal_init, c.attribute_init))
    paths = list(dict.fromkeys(p for p in named if p))
    if not paths:
        return {}
    from perception.derender.derenderer import load_derenderer

    earlier, training = [], {}
    keep = ("n_train_scenes", "proposal_scenes", "attribute_scenes", "proposal_epochs", "attribute_epochs",
            "proposal_wall_s", "attribute_wall_s")
    for path in paths:
        meta = load_derenderer(path).metadata
        if meta.get("command"):
            earlier.append(str(meta["command"]))
        training[path] = {k: meta[k] for k in keep if k in meta}
    return {"based_on": paths, "based_on_training": training, "command": " && ".join([*earlier, command])}
