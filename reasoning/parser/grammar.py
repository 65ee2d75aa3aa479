"""Type-constrained prefix decoding: the decoder only emits well-typed programs.

In prefix order, every token fills the leftmost open *slot* of the tree and
opens one slot per input.  Keeping a stack of the open slots' types, the next
token must output the type on top of the stack (the root slot takes any
terminal function: ``count``, ``exist``, ``query_*``, ``equal_*`` ...), and it
must leave a tree that can still be completed within the length budget, each
open slot of type T needing at least ``min_length[T]`` tokens (``scene`` closes
an ObjectSet slot in one token, an Object slot needs ``unique scene``...).

So every decode is a program the catalogue accepts, and REINFORCE never spends
samples on ill-typed programs (NS-VQA's decoder had no such constraint; it
only helps).  Masks are computed for a whole batch at once; only the per-row
slot stacks are Python lists.

Types may be unions (CLEVRER's ``Object|Event``): a token fits a slot when one
alternative of its output is an alternative of the slot's type, the rule of
:func:`reasoning.dsl.typecheck.compatible`.  A row's root slot is :data:`ROOT`
(any terminal function) unless the decode asks for another root type (a
CLEVRER option's program returns an ``Object|Event``, see ``roots``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from reasoning.dsl.typecheck import alternatives
from reasoning.parser.vocab import ProgramVocabulary

__all__ = ["TypeGrammar", "DecodeState"]

ROOT = "<root>"  # the type of the root slot: any terminal function may fill it


class DecodeState:
    """Open-slot stacks of a batch being decoded (top of stack = last element).

    Attributes:
        stacks: Per row, the type ids of the open slots.
        top: [B] long, type id on top of each stack (0 if the row is complete).
        rest: [B] long, summed minimal lengths of the open slots below the top.
    """

    def __init__(self, stacks: list[list[int]], grammar: TypeGrammar) -> None:
        self.stacks = stacks
        self.grammar = grammar
        self._refresh()

    def _refresh(self) -> None:
        ml = self.grammar.min_length_list
        self.top = torch.tensor([st[-1] if st else 0 for st in self.stacks], dtype=torch.long)
        self.rest = torch.tensor([sum(ml[t] for t in st[:-1]) for st in self.stacks], dtype=torch.long)

    @property
    def done(self) -> Tensor:
        """[B] bool: rows whose tree is complete."""
        return self.top == 0

    def advance(self, tokens: Sequence[int]) -> None:
        """Fill each row's top slot with its token (PAD on complete rows is a no-op)."""
        inputs = self.grammar.input_type_ids
        for st, tok in zip(self.stacks, tokens, strict=True):
            if st:
                st.pop()
                st.extend(reversed(inputs[tok]))
        self._refresh()

    def select(self, rows: Sequence[int]) -> DecodeState:
        """A state holding copies of ``rows`` (for beam search)."""
        return DecodeState([list(self.stacks[r]) for r in rows], self.grammar)


class TypeGrammar:
    """Which program tokens may come next, given the open slots.

    Args:
        vocab: Program tokens with their signatures.
        roots: Further types a decode may ask its root to have (besides
            :data:`ROOT`); slot types of the vocabulary need not be listed.
        optional: Tokens some rows may be denied (CLEVRER's option hole): the
            minimal lengths do not count on them, so a row without them can
            always complete its tree.
    """

    def __init__(self, vocab: ProgramVocabulary, roots: Sequence[str] = (), optional: Sequence[str] = ()) -> None:
        types = sorted({t for t in vocab.outputs if t} | {t for ins in vocab.inputs for t in ins} | set(roots))
        self.type_names = ("", ROOT, *types)  # id 0: no slot (row complete)
        tid = {t: i for i, t in enumerate(self.type_names)}
        self.type_ids = tid
        v = len(vocab)
        self.input_type_ids = [tuple(tid[t] for t in ins) for ins in vocab.inputs]
        allowed = torch.zeros(len(self.type_names), v, dtype=torch.bool)
        allowed[0, 0] = True  # complete rows emit PAD
        for k in range(2, v):
            out = set(alternatives(vocab.outputs[k]))
            for t in types:  # one alternative in common: the token may fill the slot
                if out & set(alternatives(t)):
                    allowed[tid[t], k] = True
            if vocab.terminal[k]:
                allowed[tid[ROOT], k] = True
        self.allowed_by_type = allowed
        denied = {k for k in range(2, v) if vocab.tokens[k] in set(optional)}
        fills = [[k for k in range(2, v) if allowed[t, k] and k not in denied] for t in range(len(self.type_names))]
        # minimal number of tokens that can fill a slot of each type (fixed point)
        inf = 10**6
        min_len = [inf] * len(self.type_names)
        min_len[0] = 0
        changed = True
        while changed:
            changed = False
            for t in range(1, len(self.type_names)):
                for k in fills[t]:
                    cost = 1 + sum(min_len[i] for i in self.input_type_ids[k])
                    if cost < min_len[t]:
                        min_len[t] = cost
                        changed = True
        self.min_length_list = min_len
        self.min_length = torch.tensor(min_len, dtype=torch.long)
        # tokens a token opens must still fit: summed minimal length of its inputs
        self.token_cost = torch.tensor(
            [0, 0, *(sum(min_len[t] for t in self.input_type_ids[k]) for k in range(2, v))], dtype=torch.long
        )

    def start(self, batch: int, roots: Sequence[str] | None = None) -> DecodeState:
        """Every row has one open slot: the root (:data:`ROOT`, or the type ``roots[i]`` names).

        Raises:
            KeyError: a root type the grammar was not built with.
        """
        if roots is None:
            return DecodeState([[1] for _ in range(batch)], self)
        return DecodeState([[self.type_ids[r]] for r in roots], self)

    def mask(self, state: DecodeState, remaining: int) -> Tensor:
        """[B, V] bool: tokens allowed now, with ``remaining`` tokens left after this one."""
        allowed = self.allowed_by_type[state.top]
        fits = (state.rest[:, None] + self.token_cost[None, :]) <= remaining
        return allowed & (fits | state.done[:, None])

    def teacher_masks(self, targets: Tensor, max_length: int, roots: Sequence[str] | None = None) -> Tensor:
        """[B, T, V] masks along teacher-forced ``targets`` [B, T] (0-padded), rows rooted as in :meth:`start`."""
        b, t = targets.shape
        state = self.start(b, roots)
        rows = targets.tolist()
        masks = []
        for step in range(t):
            masks.append(self.mask(state, max_length - step - 1))
            state.advance([r[step] for r in rows])
        return torch.stack(masks, dim=1)
