"""The NS-VQA question parser: an attention seq2seq model from words to program tokens.

Yi et al., "Neural-Symbolic VQA" (arXiv 1810.02338), Sec. 3.2: a bidirectional
LSTM encodes the question; an LSTM decoder with attention over the encoder
states (Luong et al., 2015, "general" score) emits the program in prefix order,
one token per step, side inputs fused into the tokens (``filter_color[red]``).

Decoding is constrained by token types (:class:`~reasoning.parser.grammar.TypeGrammar`):
the decoder stops exactly when the prefix tree is complete, never runs past
``max_program_length`` with open slots, and emits only well-typed programs.
A decode can still be unusable when it names a value slot the question does not
have (see :mod:`reasoning.parser.anonymize`); :meth:`QuestionParser.parse`
reports those as ``None``.

A parser writes the programs of one catalogue (:mod:`reasoning.parser.catalogues`:
CLEVR's, or CLEVRER's).  For CLEVRER, each text says what it is (``kinds``): a
question, a multiple-choice question (whose program holds one
:data:`~reasoning.parser.catalogues.CHOICE`, where the option's value goes) or
an option (its program rooted at an ``Object|Event``); the decoder is
constrained accordingly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from physics.errors import DataError, NesyError
from reasoning.dsl import Program, from_prefix_tokens
from reasoning.parser.anonymize import (
    anonymize_phrases,
    anonymize_program,
    anonymize_words,
    restore_program,
    token_slot,
)
from reasoning.parser.catalogues import CHOICE, CHOICE_ROOT, KINDS, parser_catalogue
from reasoning.parser.config import ParserConfig
from reasoning.parser.grammar import ROOT, TypeGrammar
from reasoning.parser.vocab import PAD, ProgramVocabulary, Vocabulary, tokenize

__all__ = ["QuestionParser", "Decoded", "QuestionSlots", "pad_batch"]


@dataclass(frozen=True)
class QuestionSlots:
    """What a question's slots stand for (see :mod:`reasoning.parser.anonymize`).

    Attributes:
        values: ``{"<color1>": "red", ...}``.
        phrases: ``{"<obj1>": ("filter_shape[cube]", "filter_color[red]"), ...}``.
        words: The anonymised question words.
        unknown: The words the parser's vocabulary lacks (read as :data:`~reasoning.parser.vocab.UNK`).
    """

    values: Mapping[str, str]
    phrases: Mapping[str, tuple[str, ...]]
    words: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()


def pad_batch(seqs: Sequence[Sequence[int]]) -> tuple[Tensor, Tensor]:
    """Right-pad id lists with 0.  Returns ``ids`` [B, L] (long) and ``lengths`` [B]."""
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    ids = torch.zeros(len(seqs), int(lengths.max()) if len(seqs) else 0, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
    return ids, lengths


@dataclass
class Decoded:
    """Output of :meth:`QuestionParser.decode`.

    Attributes:
        tokens: [B, T] long, program token ids, 0 (PAD) after each tree is complete.
        log_prob: [B] summed log-probability of each sequence (under the masked policy).
        entropy: [B] summed per-step entropy of the masked policy (0 for beam search).
    """

    tokens: Tensor
    log_prob: Tensor
    entropy: Tensor


class QuestionParser(nn.Module):
    """Bi-LSTM encoder + attention LSTM decoder over program tokens.

    Args:
        question_vocab: Question words (see :func:`reasoning.parser.vocab.tokenize`).
        program_vocab: Program tokens with their arities.
        config: Model sizes (training fields are ignored here).
        lexicon: Word -> (type, value) of the attribute words to anonymise into
            slots (:mod:`reasoning.parser.anonymize`); empty: no anonymisation.
        nouns: Generic nouns closing an object phrase ("thing", "objects");
            non-empty turns phrase slots (``<obj1>``) on.
        catalogue: Name of the catalogue the programs belong to
            (:data:`~reasoning.parser.catalogues.CATALOGUES`).

    Example:
        >>> parser = load_default_parser()                    # doctest: +SKIP
        >>> parser.parse(["How many red cubes are there?"])   # doctest: +SKIP
        [Program(root=Call(function='count', ...))]
    """

    def __init__(
        self,
        question_vocab: Vocabulary,
        program_vocab: ProgramVocabulary,
        config: ParserConfig,
        lexicon: Mapping[str, tuple[str, str]] | None = None,
        nouns: Iterable[str] = (),
        catalogue: str = "clevr",
    ) -> None:
        super().__init__()
        self.catalogue_name = catalogue
        self.catalogue = parser_catalogue(catalogue)
        self.lexicon = dict(lexicon or {})
        self.nouns = frozenset(nouns)
        self.question_vocab = question_vocab
        self.program_vocab = program_vocab
        self.config = config
        e, h = config.embedding_dim, config.hidden_dim
        self.word_embedding = nn.Embedding(len(question_vocab), e, padding_idx=0)
        self.encoder = nn.LSTM(e, h // 2, batch_first=True, bidirectional=True)
        self.init_h = nn.Linear(h, h)
        self.init_c = nn.Linear(h, h)
        self.token_embedding = nn.Embedding(len(program_vocab), e, padding_idx=0)
        # input feeding (Luong et al., 2015, Sec. 3.3): the previous attentional
        # state joins the token embedding, so the decoder knows what it has covered
        self.decoder = nn.LSTMCell(e + h, h)
        self.attention = nn.Linear(h, h, bias=False)  # Luong "general" score: d^T W e
        self.combine = nn.Linear(2 * h, h)
        self.output = nn.Linear(h, len(program_vocab))
        self.dropout = nn.Dropout(config.dropout)
        self._choice_ids = [i for i, t in enumerate(program_vocab.tokens) if t == CHOICE]
        self.grammar = TypeGrammar(program_vocab, roots=(CHOICE_ROOT,) if self._choice_ids else (), optional=(CHOICE,))
        # slot ("<color1>", "<obj2>") -> the ids of the tokens naming it, for masking slots a question lacks
        self._slot_tokens: dict[str, list[int]] = {}
        for i, t in enumerate(program_vocab.tokens):
            if (slot := token_slot(t)) is not None:
                self._slot_tokens.setdefault(slot, []).append(i)

    # ------------------------------------------------------------------ pieces
    def encode(self, words: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor]]:
        """Encode questions.

        Args:
            words: [B, S] word ids (0 = padding).
            lengths: [B] question lengths.

        Returns:
            ``memory`` [B, S, H] encoder states, ``keys`` [B, S, H] (memory @ W for
            attention), and the decoder's initial ``(h0, c0)``, each [B, H].
        """
        x = self.dropout(self.word_embedding(words))
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, (hn, cn) = self.encoder(packed)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=words.shape[1])
        last_h = torch.cat([hn[0], hn[1]], dim=-1)  # [B, H]: forward end + backward start
        last_c = torch.cat([cn[0], cn[1]], dim=-1)
        state = (torch.tanh(self.init_h(last_h)), self.init_c(last_c))
        return memory, self.attention(memory), state

    def _step(
        self, prev: Tensor, feed: Tensor, state: tuple[Tensor, Tensor], memory: Tensor, keys: Tensor, word_mask: Tensor
    ) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor]]:
        """One decoder step.

        Args:
            prev: [B] previous token ids; feed: [B, H] previous attentional state.
            state: LSTM ``(h, c)``, each [B, H].
            memory, keys: [B, S, H] encoder states and attention keys; word_mask: [B, S].

        Returns:
            ``logits`` [B, V], the new attentional state [B, H] and LSTM state.
        """
        x = torch.cat([self.dropout(self.token_embedding(prev)), feed], dim=-1)
        h, c = self.decoder(x, state)
        scores = torch.bmm(keys, h[:, :, None])[:, :, 0]  # [B, S]
        scores = scores.masked_fill(~word_mask, float("-inf"))
        context = torch.bmm(torch.softmax(scores, dim=-1)[:, None, :], memory)[:, 0]  # [B, H]
        mixed = torch.tanh(self.combine(torch.cat([h, context], dim=-1)))
        return self.output(self.dropout(mixed)), mixed, (h, c)

    # ------------------------------------------------------------------ training
    def forward(
        self,
        words: Tensor,
        lengths: Tensor,
        targets: Tensor,
        allowed: Tensor | None = None,
        roots: Sequence[str] | None = None,
    ) -> Tensor:
        """Teacher-forced log-probabilities of ``targets``.

        Args:
            words: [B, S] question word ids; lengths: [B].
            targets: [B, T] prefix program token ids, 0-padded.
            allowed: [B, V] bool, tokens each question may use (:meth:`slot_mask`); None: all.
            roots: Root type of each row (:meth:`kind_roots`); None: every row a question.

        Returns:
            [B, T] log-probability of each target token under the arity-masked
            policy (0 at padding positions).  Targets must be well-typed programs
            of at most ``max_program_length`` tokens.
        """
        memory, keys, state = self.encode(words, lengths)
        bos = torch.ones_like(targets[:, :1])
        inputs = torch.cat([bos, targets[:, :-1]], dim=1)
        feed = memory.new_zeros(memory.shape[0], memory.shape[2])
        steps = []
        for t in range(targets.shape[1]):
            logits_t, feed, state = self._step(inputs[:, t], feed, state, memory, keys, words != 0)
            steps.append(logits_t)
        logits = torch.stack(steps, dim=1)
        masks = self.grammar.teacher_masks(targets.cpu(), self.config.max_program_length, roots).to(logits.device)
        if allowed is not None:
            masks = masks & allowed[:, None, :]
        logits = logits.masked_fill(~masks, float("-inf"))
        logp = torch.log_softmax(logits, dim=-1).gather(-1, targets[..., None])[..., 0]
        return logp.masked_fill(targets == 0, 0.0)

    # ------------------------------------------------------------------ decoding
    def decode(
        self,
        words: Tensor,
        lengths: Tensor,
        *,
        mode: str = "greedy",
        beam_size: int = 1,
        allowed: Tensor | None = None,
        roots: Sequence[str] | None = None,
    ) -> Decoded:
        """Decode programs for a batch of questions.

        Args:
            words: [B, S] question word ids; lengths: [B].
            mode: ``"greedy"`` (argmax), ``"sample"`` (from the policy, for
                REINFORCE; keeps the graph for gradients) or ``"beam"``.
            beam_size: Beams per question in ``"beam"`` mode.
            allowed: [B, V] bool, tokens each question may use (:meth:`slot_mask`):
                a decode never names a slot its question lacks.  None: all tokens.
            roots: Root type of each row (:meth:`kind_roots`); None: every row a question.
        """
        if mode == "beam" and beam_size > 1:
            return self._beam(words, lengths, beam_size, allowed, roots)
        if mode not in ("greedy", "sample", "beam"):
            raise NesyError(f"decode mode must be 'greedy', 'sample' or 'beam', got {mode!r}")
        memory, keys, state = self.encode(words, lengths)
        word_mask = words != 0
        b = words.shape[0]
        prev = torch.ones(b, dtype=torch.long, device=words.device)
        grammar = self.grammar.start(b, roots)
        out, log_prob, entropy = [], words.new_zeros(b, dtype=torch.float), words.new_zeros(b, dtype=torch.float)
        feed = memory.new_zeros(b, memory.shape[2])
        for t in range(self.config.max_program_length):
            logits, feed, state = self._step(prev, feed, state, memory, keys, word_mask)
            mask = self.grammar.mask(grammar, self.config.max_program_length - t - 1).to(logits.device)
            if allowed is not None:
                mask = mask & allowed
            logp = torch.log_softmax(logits.masked_fill(~mask, float("-inf")), dim=-1)
            if mode == "sample":
                tok = torch.multinomial(logp.exp(), 1)[:, 0]
            else:
                tok = logp.argmax(dim=-1)
            live = ~grammar.done.to(logits.device)
            log_prob = log_prob + logp.gather(1, tok[:, None])[:, 0] * live
            p = logp.exp()
            entropy = entropy - (p * logp.masked_fill(p == 0, 0.0)).sum(-1) * live
            out.append(tok)
            grammar.advance(tok.tolist())
            prev = tok
            if bool(grammar.done.all()):
                break
        return Decoded(torch.stack(out, dim=1), log_prob, entropy)

    def _beam(
        self, words: Tensor, lengths: Tensor, k: int, allowed: Tensor | None = None, roots: Sequence[str] | None = None
    ) -> Decoded:
        """Beam search (``k`` beams per question); returns the best complete beam."""
        memory, keys, (h, c) = self.encode(words, lengths)
        b, v = words.shape[0], len(self.program_vocab)
        rep = lambda x: x.repeat_interleave(k, dim=0)  # noqa: E731  [B, ...] -> [B*k, ...]
        memory, keys, word_mask = rep(memory), rep(keys), rep(words != 0)
        allowed = rep(allowed) if allowed is not None else None
        state = (h.repeat_interleave(k, dim=0), c.repeat_interleave(k, dim=0))
        feed = memory.new_zeros(b * k, memory.shape[2])
        score = torch.full((b, k), float("-inf"), device=words.device)
        score[:, 0] = 0.0
        score = score.view(-1)
        prev = torch.ones(b * k, dtype=torch.long, device=words.device)
        grammar = self.grammar.start(b * k, None if roots is None else [r for r in roots for _ in range(k)])
        history = torch.zeros(b * k, 0, dtype=torch.long, device=words.device)
        base = (torch.arange(b, device=words.device) * k)[:, None]
        for t in range(self.config.max_program_length):
            logits, feed, state = self._step(prev, feed, state, memory, keys, word_mask)
            mask = self.grammar.mask(grammar, self.config.max_program_length - t - 1).to(logits.device)
            if allowed is not None:
                mask = mask & allowed
            logp = torch.log_softmax(logits.masked_fill(~mask, float("-inf")), -1)
            done = grammar.done.to(logits.device)
            logp = torch.where(done[:, None], torch.full_like(logp, float("-inf")), logp)
            logp[:, 0] = torch.where(done, 0.0, float("-inf"))
            total = (score[:, None] + logp).view(b, k * v)
            top, idx = total.topk(k, dim=1)
            src = (base + idx // v).view(-1)
            tok = (idx % v).view(-1)
            score = top.view(-1)
            state = (state[0][src], state[1][src])
            feed = feed[src]
            history = torch.cat([history[src], tok[:, None]], dim=1)
            grammar = grammar.select(src.tolist())
            grammar.advance(tok.tolist())
            prev = tok
            if bool(grammar.done.all()):
                break
        best = score.view(b, k).argmax(dim=1) + base[:, 0]
        return Decoded(history[best], score[best], torch.zeros(b, device=words.device))

    # ------------------------------------------------------------------ user API
    def _slotted(self, question: str) -> tuple[list[str], dict[str, str], dict[str, tuple[str, ...]]]:
        """Anonymised words, value slots and phrase slots of one question."""
        words = tokenize(question)
        phrases: dict[str, tuple[str, ...]] = {}
        if self.nouns and self.lexicon:
            words, phrases = anonymize_phrases(words, self.lexicon, self.nouns)
        words, values = anonymize_words(words, self.lexicon, per_occurrence=bool(self.nouns))
        return words, values, phrases

    def unknown_words(self, questions: Sequence[str]) -> list[tuple[str, ...]]:
        """The words of each question that the parser never saw (empty tuples: none)."""
        return [tuple(self.question_vocab.unknown(self._slotted(q)[0])) for q in questions]

    def encode_questions(
        self, questions: Sequence[str], *, word_dropout: float = 0.0
    ) -> tuple[Tensor, Tensor, list[QuestionSlots]]:
        """Word ids [B, S], lengths [B] and each question's :class:`QuestionSlots`.

        Args:
            questions: Question texts.
            word_dropout: Probability (training only) that a plain word (not a
                slot) is read as :data:`~reasoning.parser.vocab.UNK`, drawn from
                torch's global RNG; this is what teaches the model to read past
                words it never saw.

        Raises:
            DataError: an empty question, or an unknown word when the
                vocabulary has no UNK id (names it and its position).
        """
        ids, slots = [], []
        unk = self.question_vocab.unk_id
        for i, q in enumerate(questions):
            words, values, phrases = self._slotted(q)
            try:
                row = self.question_vocab.encode(q, where=f"question {i}", words=words)
            except DataError:
                if words and unk is None:  # report the unknown word at its place in the question
                    raw = tokenize(q)
                    self.question_vocab.encode(q, where=f"question {i}", words=[PAD if w in self.lexicon else w for w in raw])
                raise
            if word_dropout > 0 and unk is not None:
                drop = (torch.rand(len(row)) < word_dropout).tolist()
                row = [unk if d and not w.startswith("<") else r for r, w, d in zip(row, words, drop, strict=True)]
            ids.append(row)
            slots.append(QuestionSlots(values, phrases, tuple(words), tuple(self.question_vocab.unknown(words))))
        words_t, lengths = pad_batch(ids)
        return words_t.to(self.word_embedding.weight.device), lengths, slots

    def slot_mask(self, slots: Sequence[QuestionSlots], kinds: Sequence[str] | None = None) -> Tensor:
        """[B, V] bool: every token, except slot tokens naming a slot the question lacks.

        With ``kinds``, the option hole :data:`~reasoning.parser.catalogues.CHOICE`
        is allowed only in multiple-choice questions.
        """
        mask = torch.ones(len(slots), len(self.program_vocab), dtype=torch.bool)
        for i, sl in enumerate(slots):
            for slot, token_ids in self._slot_tokens.items():
                if slot not in sl.values and slot not in sl.phrases:
                    mask[i, token_ids] = False
        for i, kind in enumerate(kinds or ["question"] * len(slots)):
            if kind != "multiple_choice":
                mask[i, self._choice_ids] = False
        return mask.to(self.word_embedding.weight.device)

    def kind_roots(self, kinds: Sequence[str] | None) -> list[str] | None:
        """Root type of each text of ``kinds`` (None when all are questions: the terminal root).

        Raises:
            DataError: an unknown kind, or an option or multiple-choice question
                for a parser whose catalogue has no option hole (CLEVR's).
        """
        if kinds is None or all(k == "question" for k in kinds):
            return None
        for k in kinds:
            if k not in KINDS:
                raise DataError(f"unknown text kind {k!r}; choose one of {', '.join(KINDS)}")
        if not self._choice_ids:
            raise DataError(f"this parser writes {self.catalogue_name} programs, which have no multiple-choice options")
        return [CHOICE_ROOT if k == "choice" else ROOT for k in kinds]

    def target_ids(self, tokens: Sequence[str], slots: QuestionSlots, where: str = "program") -> list[int]:
        """Decoder targets for ground-truth prefix ``tokens`` (values named by the question become slots)."""
        if len(tokens) > self.config.max_program_length:
            raise DataError(
                f"{where}: program of {len(tokens)} tokens is longer than max_program_length "
                f"{self.config.max_program_length}"
            )
        if self.lexicon:
            tokens = anonymize_program(tokens, slots.values, slots.phrases, slots.words, catalogue=self.catalogue,
                                       reuse_phrases=self.catalogue_name != "clevr")
        return self.program_vocab.encode(tokens, where=where)

    def restore(self, ids: Sequence[int], slots: QuestionSlots) -> tuple[str, ...] | None:
        """Plain prefix tokens of decoded ``ids``; None if a slot is not in the question."""
        tokens = self.program_vocab.decode(ids)
        restored = restore_program(tokens, slots.values, slots.phrases) if self.lexicon else tokens
        return None if restored is None else tuple(restored)

    def to_program(self, tokens: Sequence[str] | None) -> Program | None:
        """The Program of prefix ``tokens``, or None if it is ill-formed or ill-typed."""
        if tokens is None:
            return None
        try:
            program = from_prefix_tokens(list(tokens), self.catalogue)
            self.catalogue.check(program)
        except NesyError:
            return None
        return program

    @torch.no_grad()
    def parse_tokens(
        self,
        questions: Sequence[str],
        *,
        beam_size: int = 1,
        batch_size: int = 256,
        kinds: Sequence[str] | None = None,
    ) -> list[tuple[str, ...] | None]:
        """Prefix program tokens decoded for each question (greedy, or beam if ``beam_size > 1``).

        ``None`` where the decode names a value slot the question does not have.
        ``kinds`` says what each text is (:data:`~reasoning.parser.catalogues.KINDS`; default: questions).
        """
        was_training = self.training
        self.eval()
        out: list[tuple[str, ...] | None] = []
        try:
            for s in range(0, len(questions), batch_size):
                words, lengths, slots = self.encode_questions(questions[s : s + batch_size])
                part = None if kinds is None else kinds[s : s + batch_size]
                mode = "beam" if beam_size > 1 else "greedy"
                dec = self.decode(words, lengths, mode=mode, beam_size=beam_size, allowed=self.slot_mask(slots, part),
                                  roots=self.kind_roots(part))
                out.extend(self.restore(row.tolist(), sl) for row, sl in zip(dec.tokens, slots, strict=False))
        finally:
            self.train(was_training)
        return out

    def parse(self, questions: Sequence[str], *, beam_size: int = 1) -> list[Program | None]:
        """Parse questions into programs.

        Args:
            questions: Question texts.  A word the parser never saw is read as
                :data:`~reasoning.parser.vocab.UNK` (:meth:`unknown_words` lists them).
            beam_size: 1 for greedy decoding, more for beam search.

        Returns:
            One :class:`~reasoning.dsl.Program` per question, or ``None`` where
            the decoded tokens do not form a well-typed program.

        Raises:
            DataError: an empty question, or an unknown word for a parser whose
                vocabulary has no UNK id (checkpoints older than it; names the word).
        """
        return [self.to_program(t) for t in self.parse_tokens(questions, beam_size=beam_size)]
