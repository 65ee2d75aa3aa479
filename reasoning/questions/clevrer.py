"""CLEVRER questions for a video: descriptive, explanatory, predictive and counterfactual.

The four question types of CLEVRER (Yi, Gan et al., ICLR 2020), each with its
program in CLEVRER's postfix tokens (:mod:`reasoning.dsl.clevrer_format`) and
its answer, written in the official question JSON (one entry per video with
``scene_index``, ``video_filename`` and ``questions``; see
``../shared/data/clevrer/FORMAT.md``):

* descriptive (open answer), subtypes ``count``, ``exist``, ``query_color``,
  ``query_material``, ``query_shape``: "How many metal objects are moving?";
* explanatory: "Which of the following is responsible for the collision between
  the cube and the sphere?", options are earlier collisions, entrances and
  objects' presence, correct when they are causal ancestors of the collision;
* predictive: "Which of the following will happen next?", options are
  collisions, correct when they happen after the observed frames; two options
  (one correct, one wrong) by default, as in CLEVRER, whose published per-option
  and per-question predictive accuracies agree with two options a question
  (NS-DR in the CLEVRER paper: 82.9% per option, 68.7% = 0.829^2 per question);
* counterfactual: "Which of the following will (not) happen if the cube is
  removed?", options are collisions of the other objects in the re-run video.

Each multiple-choice question has at least one correct and one wrong option;
its ``program`` is the question part, to run after an option's program (the
official executor's judging, :func:`~reasoning.executor.video.judge_choice`).

Answers come from the video's evidence directly (events, causal ancestors,
future and counterfactual collisions of a :class:`VideoScene` over the ground
truth), never by running the programs, so that ``nesy eval clevrer`` with
ground truth everywhere checks that programs and answers agree.

Balance, as CLEVRER balances its answers, per video (so that a folder's
questions do not depend on how its videos were split among workers): exist
questions alternate yes and no, a count or query answer is used at most once
per subtype, and every multiple-choice question mixes correct and wrong options.
Everything is a pure function of the video and ``seed``.

>>> cfg = ClevrerQuestionConfig(descriptive=4)
>>> cfg.counterfactual
3
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from physics.config_types import check_field_types
from physics.errors import ConfigError, DataError
from physics.worlds.clevrer_annotation import VideoAnnotation
from physics.worlds.clevrer_events import Event
from reasoning.dsl.clevrer_format import to_clevrer_tokens
from reasoning.dsl.program import Call
from reasoning.executor.video_scene import VideoScene

__all__ = [
    "ClevrerQuestionConfig",
    "generate_video_questions",
    "question_file_name",
    "QUESTION_TYPES",
    "MC_TYPES",
    "DESCRIPTIVE_SUBTYPES",
]

QUESTION_TYPES = ("descriptive", "explanatory", "predictive", "counterfactual")
MC_TYPES = QUESTION_TYPES[1:]  # the multiple-choice types: options, each right or wrong
DESCRIPTIVE_SUBTYPES = ("count", "exist", "query_color", "query_material", "query_shape")
ATTRS = ("color", "material", "shape")
_CHOICE = "CHOICE"  # marks where an option's program goes in a question's program
_SPLIT_FILES = {"train": "train.json", "val": "validation.json", "validation": "validation.json", "test": "test.json"}


def question_file_name(split: str) -> str:
    """The official question file of a split: ``train.json``, ``validation.json``, ``test.json``."""
    return _SPLIT_FILES.get(split, f"questions_{split}.json")


@dataclass(frozen=True)
class ClevrerQuestionConfig:
    """How many questions of each type a video gets (at most: a video may not offer that many)."""

    descriptive: int = field(default=6, metadata={"help": "descriptive questions per video"})
    explanatory: int = field(default=2, metadata={"help": "explanatory questions per video"})
    predictive: int = field(default=1, metadata={"help": "predictive questions per video (0 or 1: one question, its options vary)"})
    counterfactual: int = field(default=3, metadata={"help": "counterfactual questions per video"})
    choices: int = field(default=4, metadata={"help": "most options of an explanatory or counterfactual question (at least 2)"})
    predictive_choices: int = field(default=2, metadata={
        "help": "most options of a predictive question (CLEVRER: 2; a question folder built with 4 resumes "
                "with 4)"})

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        for name in QUESTION_TYPES:
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("choices", "predictive_choices"):
            if getattr(self, name) < 2:
                raise ConfigError(f"{name} must be >= 2 (one correct and one wrong option), got {getattr(self, name)}")

    def choices_of(self, question_type: str) -> int:
        """The most options a multiple-choice question of ``question_type`` gets."""
        return self.predictive_choices if question_type == "predictive" else self.choices


# ---------------------------------------------------------------- programs
def _c(function: str, *args: Call, values: Iterable[str] = ()) -> Call:
    return Call(function, tuple(args), tuple(values))


def _filters(objs: Call, attrs: dict[str, str]) -> Call:
    for attr in ATTRS:
        if attr in attrs:
            objs = _c(f"filter_{attr}", objs, values=(attrs[attr],))
    return objs


def _phrase(attrs: dict[str, str], plural: bool = False) -> str:
    words = [attrs[a] for a in ("color", "material") if a in attrs]
    noun = attrs.get("shape", "object")
    if plural:
        noun = {"sphere": "spheres", "cylinder": "cylinders", "cube": "cubes", "object": "objects"}[noun]
    return " ".join([*words, noun])


@dataclass(frozen=True)
class _Ref:
    """A unique description of one object: its words, text and program."""

    obj: int
    attrs: dict[str, str]

    @property
    def text(self) -> str:
        return f"the {_phrase(self.attrs)}"

    def call(self) -> Call:
        return _c("unique", _filters(_c("objects"), self.attrs))


class _Video:
    """The evidence the generator reads, with its random stream."""

    def __init__(self, scene: VideoScene, rng: np.random.Generator) -> None:
        self.scene = scene
        self.rng = rng
        self.objects = scene.objects
        self.props = {o: {a: getattr(scene.properties[o], a) for a in ATTRS} for o in self.objects}
        self.observed = tuple(e for e in scene.events if e.kind not in ("start", "end"))
        self._refs: dict[int, _Ref] = {}

    def shuffled(self, items: Iterable[Any]) -> list[Any]:
        items = list(items)
        return [items[i] for i in self.rng.permutation(len(items))]

    def matching(self, attrs: dict[str, str]) -> list[int]:
        return [o for o in self.objects if all(self.props[o][a] == v for a, v in attrs.items())]

    def ref(self, obj: int) -> _Ref:
        """The shortest description naming only ``obj`` (ties broken at random, then kept)."""
        if obj not in self.props:
            raise DataError(f"{self.scene.name}: object {obj} is never in view, so no question can name it")
        if obj not in self._refs:
            for size in (1, 2, 3):
                subsets = self.shuffled(itertools.combinations(ATTRS, size))
                for subset in subsets:
                    attrs = {a: self.props[obj][a] for a in subset}
                    if self.matching(attrs) == [obj]:
                        self._refs[obj] = _Ref(obj, attrs)
                        break
                if obj in self._refs:
                    break
            else:
                raise DataError(f"{self.scene.name}: object {obj} looks like another object of the video "
                                f"({self.props[obj]}); CLEVRER videos never hold two alike")
        return self._refs[obj]

    def random_attrs(self, max_size: int = 2) -> dict[str, str]:
        """A description of a group of objects: none, one or two attributes of a visible object."""
        size = int(self.rng.integers(0, max_size + 1))
        obj = self.objects[int(self.rng.integers(len(self.objects)))]
        chosen = sorted(self.rng.choice(len(ATTRS), size=size, replace=False).tolist())
        return {ATTRS[k]: self.props[obj][ATTRS[k]] for k in chosen}

    def pair_events(self, a: int, b: int, events: Iterable[Event]) -> list[Event]:
        return [e for e in events if e.kind == "collision" and set(e.objects) == {a, b}]

    def single(self, kind: str, obj: int) -> Event | None:
        found = [e for e in self.observed if e.kind == kind and obj in e.objects]
        return found[0] if len(found) == 1 else None


# ---------------------------------------------------------------- descriptive
Candidate = tuple[str, str, Call, str]  # (subtype, question, program, answer)


def _events_of(v: _Video, kind: str, objs: Call) -> Call:
    return _c(f"filter_{kind}", _c("events"), objs)


def _descriptive_candidates(v: _Video) -> list[Candidate]:
    s = v.scene
    out: list[Candidate] = []
    end_frame = _c("query_frame", _c("filter_end", _c("events")))
    last = s.annotation.motion_trajectory[-1].frame_id
    for _ in range(4):
        attrs = v.random_attrs()
        group = v.matching(attrs)
        phrase = _phrase(attrs, plural=True)
        moving = [o for o in group if s.moving(o, None)]
        still = [o for o in group if not s.moving(o, None)]
        out.append(("count", f"How many {phrase} are moving?",
                    _c("count", _c("filter_moving", _filters(_c("objects"), attrs), _c("null"))), str(len(moving))))
        out.append(("count", f"How many {phrase} are stationary?",
                    _c("count", _c("filter_stationary", _filters(_c("objects"), attrs), _c("null"))), str(len(still))))
        one = _phrase(attrs)
        out.append(("exist", f"Is there a moving {one}?",
                    _c("exist", _c("filter_moving", _filters(_c("objects"), attrs), _c("null"))), _yes(moving)))
        out.append(("exist", f"Is there a stationary {one}?",
                    _c("exist", _c("filter_stationary", _filters(_c("objects"), attrs), _c("null"))), _yes(still)))
        entering = [e for e in v.observed if e.kind == "in" and e.objects[0] in group]
        out.append(("exist", f"Are there any {phrase} that enter the scene?",
                    _c("exist", _events_of(v, "in", _filters(_c("objects"), attrs))), _yes(entering)))
    collisions = [e for e in v.observed if e.kind == "collision"]
    out.append(("count", "How many collisions happen?",
                _c("count", _events_of(v, "collision", _c("objects"))), str(len(collisions))))
    entrances = [e for e in v.observed if e.kind == "in"]
    out.append(("count", "How many objects enter the scene?",
                _c("count", _events_of(v, "in", _c("objects"))), str(len(entrances))))
    moving_end = [o for o in v.objects if s.moving_at(o, last)]
    out.append(("count", "How many objects are moving when the video ends?",
                _c("count", _c("filter_moving", _c("objects"), end_frame)), str(len(moving_end))))
    for a, b in itertools.combinations(v.objects, 2):
        ra, rb = v.ref(a), v.ref(b)
        hit = v.pair_events(a, b, v.observed)
        out.append(("exist", f"Does {ra.text} collide with {rb.text}?",
                    _c("exist", _c("filter_collision", _events_of(v, "collision", ra.call()), rb.call())), _yes(hit)))
    for o in v.objects:
        r = v.ref(o)
        out.append(("exist", f"Is {r.text} moving when the video ends?",
                    _c("exist", _c("filter_moving", _filters(_c("objects"), r.attrs), end_frame)),
                    _yes(s.moving_at(o, last))))
    out += _relative_to_events(v)
    out += _query_candidates(v)
    return out


def _relative_to_events(v: _Video) -> list[Candidate]:
    """Questions about what happens before or after an object enters or exits, and who moves then."""
    s = v.scene
    out: list[Candidate] = []
    collisions = [e for e in v.observed if e.kind == "collision"]
    for o in v.objects:
        r = v.ref(o)
        for kind, verb, side in (("in", "enters", "after"), ("out", "exits", "before")):
            event = v.single(kind, o)
            if event is None:
                continue
            anchor = _c("unique", _events_of(v, kind, r.call()))
            related = [e for e in collisions if (e.frame > event.frame if side == "after" else e.frame < event.frame)]
            window = _c(f"filter_{side}", _c("events"), anchor)
            out.append(("count", f"How many collisions happen {side} {r.text} {verb} the scene?",
                        _c("count", _c("filter_collision", window, _c("objects"))), str(len(related))))
            out.append(("exist", f"Is there a collision {side} {r.text} {verb} the scene?",
                        _c("exist", _c("filter_collision", window, _c("objects"))), _yes(related)))
            moving = [x for x in v.objects if s.moving_at(x, event.frame)]
            out.append(("count", f"How many objects are moving when {r.text} {verb} the scene?",
                        _c("count", _c("filter_moving", _c("objects"), _c("query_frame", anchor))), str(len(moving))))
    return out


def _yes(found: object) -> str:
    return "yes" if found else "no"


def _query_candidates(v: _Video) -> list[Candidate]:
    s = v.scene
    out: list[Candidate] = []

    def ask(target: int, about: str, program: Callable[[], Call], avoid: dict[str, str] | None = None) -> None:
        if target not in v.props:
            return  # never in view (a collision just outside the frame): nothing a viewer could name
        for attr in ATTRS:
            if avoid and attr in avoid:
                continue  # do not ask what the question already says
            out.append((f"query_{attr}", f"What is the {_attr_word(attr)} of {about}?",
                        _c(f"query_{attr}", program()), v.props[target][attr]))

    entrances = [e for e in v.observed if e.kind == "in"]
    frames = [e.frame for e in entrances]
    if len(entrances) >= 2:
        for order, k in (("first", 0), ("second", 1), ("last", -1)):
            if frames.count(frames[k]) == 1 and not (order == "second" and len(entrances) == 2):
                ask(entrances[k].objects[0], f"the object that enters the scene {order}",
                    lambda order=order: _c("query_object", _c("filter_order", _events_of(v, "in", _c("objects")),
                                                               values=(order,))))
    exits = [e for e in v.observed if e.kind == "out"]
    if len(exits) == 1:
        ask(exits[0].objects[0], "the object that exits the scene",
            lambda: _c("query_object", _c("unique", _events_of(v, "out", _c("objects")))))
    still = [o for o in v.objects if not s.moving(o, None)]
    if len(still) == 1:
        ask(still[0], "the stationary object", lambda: _c("unique", _c("filter_stationary", _c("objects"), _c("null"))))
    for o in v.objects:
        r = v.ref(o)
        hits = [e for e in v.observed if e.kind == "collision" and o in e.objects]
        if len(hits) == 1:
            partner = next(p for p in hits[0].objects if p != o)
            ask(partner, f"the object that collides with {r.text}",
                lambda r=r: _c("query_collision_partner", _c("unique", _events_of(v, "collision", r.call())), r.call()),
                avoid=None)
        elif len(hits) >= 2 and hits[0].frame != hits[1].frame and hits[-1].frame != hits[-2].frame:
            for order, hit in (("first", hits[0]), ("last", hits[-1])):
                partner = next(p for p in hit.objects if p != o)
                ask(partner, f"the {order} object to collide with {r.text}",
                    lambda r=r, order=order: _c("query_collision_partner",
                                                _c("filter_order", _events_of(v, "collision", r.call()), values=(order,)),
                                                r.call()))
    return out


def _attr_word(attr: str) -> str:
    return {"color": "color", "material": "material", "shape": "shape"}[attr]


def _pick_descriptive(v: _Video, candidates: list[Candidate], n: int) -> list[Candidate]:
    """Round robin over subtypes; exist answers alternate yes/no, other answers once per subtype."""
    by_type: dict[str, list[Candidate]] = {t: [] for t in DESCRIPTIVE_SUBTYPES}
    for c in v.shuffled(candidates):
        by_type[c[0]].append(c)
    used_answers: dict[str, set[str]] = {t: set() for t in DESCRIPTIVE_SUBTYPES}
    texts: set[str] = set()
    want_yes = bool(v.rng.integers(2))
    picked: list[Candidate] = []
    order = v.shuffled(DESCRIPTIVE_SUBTYPES)
    while len(picked) < n and any(by_type.values()):
        for subtype in order:
            if len(picked) >= n:
                break
            pool = by_type[subtype]
            while pool:
                c = pool.pop(0)
                if c[1] in texts:
                    continue
                if subtype == "exist":
                    if (c[3] == "yes") != want_yes:
                        continue
                    want_yes = not want_yes
                elif c[3] in used_answers[subtype]:
                    continue
                used_answers[subtype].add(c[3])
                texts.add(c[1])
                picked.append(c)
                break
    return picked


# ---------------------------------------------------------------- multiple choice
Option = tuple[str, Call, bool]  # (text, program, correct)


def _collision_choice(v: _Video, a: int, b: int, source: str) -> Call:
    return _c("unique", _c("filter_collision", _c("filter_collision", _c(source), v.ref(a).call()), v.ref(b).call()))


def _pick_options(v: _Video, options: list[Option], n: int) -> list[Option] | None:
    right = v.shuffled(o for o in options if o[2])
    wrong = v.shuffled(o for o in options if not o[2])
    if not right or not wrong:
        return None
    k = int(v.rng.integers(1, min(len(right), n - 1) + 1))
    chosen = right[:k] + wrong[: n - k]
    return v.shuffled(chosen)


def _explanatory(v: _Video) -> list[tuple[str, Callable[[Call], Call], list[Option]]]:
    s = v.scene
    out = []
    seen = set(v.props)  # a collision with an object never in view cannot be named
    for target in v.observed:
        if target.kind != "collision" or len(v.pair_events(*target.objects, v.observed)) != 1:
            continue
        if not seen.issuperset(target.objects):
            continue
        a, b = target.objects
        causes = s.causes(target)
        if not causes:
            continue
        options: list[Option] = []
        for e in v.observed:
            if e == target or not seen.issuperset(e.objects):
                continue
            if e.kind == "collision" and len(v.pair_events(*e.objects, v.observed)) == 1:
                p, q = e.objects
                options.append((f"The collision between {v.ref(p).text} and {v.ref(q).text}",
                                _collision_choice(v, p, q, "events"), e in causes))
            elif e.kind == "in" and v.single("in", e.objects[0]) == e:
                options.append((f"{_cap(v.ref(e.objects[0]).text)} enters the scene",
                                _c("unique", _c("filter_in", _c("events"), v.ref(e.objects[0]).call())), e in causes))
        involved = {o for e in causes for o in e.objects}
        for o in v.objects:
            if o not in (a, b):
                options.append((f"The presence of {v.ref(o).text}", v.ref(o).call(), o in involved))
        target_call = _collision_choice(v, a, b, "events")
        text = f"Which of the following is responsible for the collision between {v.ref(a).text} and {v.ref(b).text}?"
        out.append((text, lambda choice, t=target_call: _c("belong_to", choice, _c("filter_ancestor", _c("events"), t)),
                    options))
    return out


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _predictive(v: _Video) -> list[tuple[str, Callable[[Call], Call], list[Option]]]:
    future = v.scene.unseen_events
    options = [(f"{_cap(v.ref(a).text)} collides with {v.ref(b).text}", _collision_choice(v, a, b, "all_events"),
                bool(v.pair_events(a, b, future))) for a, b in itertools.combinations(v.objects, 2)]
    return [("Which of the following will happen next?", lambda choice: _c("belong_to", choice, _c("unseen_events")),
             options)]


def _counterfactual(v: _Video) -> list[tuple[str, Callable[[Call], Call], list[Option]]]:
    out = []
    for x in v.objects:
        cf = v.scene.counterfact_events(x)
        rest = [o for o in v.objects if o != x]
        happens = [(a, b, bool(v.pair_events(a, b, cf))) for a, b in itertools.combinations(rest, 2)]
        negated = bool(v.rng.integers(2))
        options = [(f"{_cap(v.ref(a).text)} collides with {v.ref(b).text}", _collision_choice(v, a, b, "all_events"),
                    hit != negated) for a, b, hit in happens]
        removed = v.ref(x).call()
        if negated:
            text = f"Which of the following will not happen if {v.ref(x).text} is removed?"
        else:
            text = f"Which of the following will happen without {v.ref(x).text}?"

        def build(choice: Call, r: Call = removed, negated: bool = negated) -> Call:
            judged = _c("belong_to", choice, _c("counterfact_events", r))
            return _c("negate", judged) if negated else judged

        out.append((text, build, options))
    return out


def _question_tokens(build: Callable[[Call], Call]) -> list[str]:
    tokens = to_clevrer_tokens(build(Call(_CHOICE)))
    assert tokens[0] == _CHOICE, "an option's program must come first in its question's program"
    return tokens[1:]


# ---------------------------------------------------------------- one video
def generate_video_questions(
    annotation: VideoAnnotation, scene: VideoScene, config: ClevrerQuestionConfig, seed: int = 0
) -> dict[str, Any]:
    """The official question entry of one video.

    Args:
        annotation: The video's annotation.
        scene: The video bound with its ground-truth dynamics.
        config: How many questions of each type.
        seed: Question seed; the video's ``scene_index`` is mixed in.

    Returns:
        ``{"scene_index", "video_filename", "questions": [...]}`` as in CLEVRER's ``validation.json``.
    """
    v = _Video(scene, np.random.default_rng([seed, annotation.scene_index]))
    questions: list[dict[str, Any]] = []
    if v.objects:
        for subtype, text, program, answer in _pick_descriptive(v, _descriptive_candidates(v), config.descriptive):
            questions.append({"question_id": len(questions), "question": text, "question_type": "descriptive",
                              "question_subtype": subtype, "program": to_clevrer_tokens(program), "answer": answer})
        for qtype, families, n in (("explanatory", _explanatory, config.explanatory),
                                   ("predictive", _predictive, config.predictive),
                                   ("counterfactual", _counterfactual, config.counterfactual)):
            made = 0
            for text, build, options in v.shuffled(families(v)):
                if made >= n:
                    break
                chosen = _pick_options(v, options, config.choices_of(qtype))
                if chosen is None:
                    continue
                questions.append({
                    "question_id": len(questions), "question": text, "question_type": qtype,
                    "program": _question_tokens(build),
                    "choices": [{"choice_id": k, "choice": t, "program": to_clevrer_tokens(p),
                                 "answer": "correct" if ok else "wrong"} for k, (t, p, ok) in enumerate(chosen)],
                })
                made += 1
    return {"scene_index": annotation.scene_index, "video_filename": annotation.video_filename,
            "questions": questions}


def question_path(folder: str | Path, split: str) -> Path:
    """Where a split's questions are written: ``<folder>/<official file name>``."""
    return Path(folder) / question_file_name(split)
