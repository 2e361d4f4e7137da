"""Cutting agent text into speakable chunks, so TTS can start on the first short clause.

Pure decisions: no I/O, no clocks. ``speech_chunks`` cuts a whole text, ``ChunkStream`` cuts the
same text while it streams in from the LLM and returns exactly the same chunks, and
``spoken_prefix`` says what the user actually heard when playback was cut short.

Cuts fall only *between* whitespace-separated words, so numbers ("3.5", "$1,200", "9:30"),
URLs, e-mail addresses and ellipses are never split, and joining the chunks with single spaces
gives back the input's words in order.

Rules:

* Sentences end at ``.``, ``!``, ``?``, ``…``/``...`` and the soft breaks ``;`` and ``:``
  (closing quotes/brackets may follow), and at line breaks. A ``.`` or ellipsis followed by a
  lowercase word, and abbreviations ("Mr.", "Dr.", "e.g.", "U.S.", "J.", list numbers "1."),
  do not end a sentence.
* The first chunk is short: a first sentence of more than ``first_max_words`` words is cut at
  its first clause boundary (comma, dash, or a conjunction followed by at least two words)
  that leaves between about half and twice ``first_max_words`` words in the chunk; failing
  that, after ``first_max_words`` words.
* Later chunks are whole sentences; short ones (under ``MERGE_BELOW_CHARS``) take the next
  sentence along, and one longer than ``max_chars`` is split at its last clause boundary that
  fits (else at the last word that fits).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = [
    "MERGE_BELOW_CHARS",
    "MIN_TAIL_WORDS",
    "ChunkStream",
    "speech_chunks",
    "spoken_prefix",
]

MERGE_BELOW_CHARS = 40  # a later chunk shorter than this takes the next sentence along
MIN_TAIL_WORDS = 2  # a clause cut must leave at least this many words of its sentence

_WORD = re.compile(r"\S+")
# Curly quotes and dashes are spelt as escapes so they cannot be mistaken for ASCII ones.
_CLOSERS = "\"')]}*\u00bb\u201d\u2019"
_OPENERS = "\"'([{*\u00ab\u201c\u2018"
_HARD_ENDS = ("!", "?", ";", ":")
_ELLIPSES = ("...", "…")
_DASHES = "\u2014\u2013\u2015"  # em dash, en dash, horizontal bar
_DASH_TOKENS = frozenset({"-", "--", *_DASHES})
_DASH_ENDS = ("--", *_DASHES)
_CONJUNCTIONS = frozenset(
    {"and", "but", "or", "so", "because", "which", "while", "although", "though", "unless"}
)
# Abbreviations whose period is (almost) never a sentence end. Wrongly merging two sentences
# only costs a little latency; wrongly splitting one breaks the prosody, so err on merging.
_ABBREVIATIONS = frozenset(
    {
        "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "rev", "gen", "col", "capt",
        "lt", "sgt", "gov", "sen", "rep", "hon", "vs", "cf", "approx", "fig", "dept", "inc",
        "ltd", "corp", "etc",
    }
)  # fmt: skip
_DOTTED = re.compile(r"(?:[A-Za-z]{1,2}\.){2,}")  # U.S., e.g., i.e., a.m., Ph.D.
_INITIAL = re.compile(r"[A-Z]\.")  # "J. R. R. Tolkien"
_LIST_NUMBER = re.compile(r"\d+\.")  # "1. Eggs" must not become a one-word first chunk


def speech_chunks(text: str, *, first_max_words: int = 6, max_chars: int = 220) -> list[str]:
    """Cut ``text`` into chunks to speak one after another (see the module's rules)."""
    _check_limits(first_max_words, max_chars)
    chunks, _, _ = _drain(text, True, True, first_max_words, max_chars)
    return chunks


class ChunkStream:
    """``speech_chunks`` for text that arrives in pieces: chunks come out as soon as they are
    certain, and everything returned by ``push`` and ``flush`` together equals
    ``speech_chunks`` of the whole text, however it was split."""

    def __init__(self, *, first_max_words: int = 6, max_chars: int = 220) -> None:
        _check_limits(first_max_words, max_chars)
        self._first_max_words = first_max_words
        self._max_chars = max_chars
        self._pending = ""  # text not yet returned, starting at the next chunk
        self._first = True

    def push(self, delta: str) -> list[str]:
        """Add streamed text; return the chunks that are complete now."""
        self._pending += delta
        chunks, self._pending, self._first = _drain(
            self._pending, self._first, False, self._first_max_words, self._max_chars
        )
        return chunks

    def flush(self) -> list[str]:
        """The text is complete: return the remaining chunks and start over for the next text."""
        chunks, _, _ = _drain(
            self._pending, self._first, True, self._first_max_words, self._max_chars
        )
        self._pending = ""
        self._first = True
        return chunks


def lead_in(chunks: list[str], *, max_words: int = 1, min_rest_words: int = 2) -> list[str]:
    """Split a one-word opening ("Sure,", "Okay —") off the first chunk.

    The first audio waits for the whole first chunk to be synthesized, and a TTS model's
    cost has a large fixed part: a one-word lead-in that ends at a comma or a dash starts
    speech ~50 ms sooner, where the speaker would pause anyway.
    """
    if not chunks:
        return chunks
    words = chunks[0].split()
    for i in range(min(max_words, len(words))):
        end = i
        if i + 1 < len(words) and words[i + 1] in _DASH_TOKENS:
            end = i + 1  # "Okay — here it is."
        elif not words[i].endswith((",", *_DASH_ENDS)):
            continue
        if len(words) - end - 1 >= min_rest_words:
            return [" ".join(words[: end + 1]), " ".join(words[end + 1 :]), *chunks[1:]]
        return chunks
    return chunks


def spoken_prefix(chunks: list[str], spoken_chunks: int, fraction_of_current: float) -> str:
    """What the user heard: the first ``spoken_chunks`` chunks whole, plus the leading words
    of the next chunk in proportion to ``fraction_of_current`` (rounded down to whole words)."""
    if spoken_chunks < 0:
        raise ValueError(f"spoken_chunks must not be negative, got {spoken_chunks}")
    heard = [chunk.strip() for chunk in chunks[:spoken_chunks]]
    if spoken_chunks < len(chunks):
        fraction = 0.0 if math.isnan(fraction_of_current) else fraction_of_current
        fraction = min(1.0, max(0.0, fraction))
        words = chunks[spoken_chunks].split()
        # The epsilon keeps float noise (0.29 * 100 == 28.999...) from losing a word.
        heard.extend(words[: math.floor(fraction * len(words) + 1e-9)])
    return " ".join(part for part in heard if part)


# --- the planner -------------------------------------------------------------------------------
#
# The planner decides the next chunk from a _View of the pending text. Every look at the text
# goes through the view, which raises _NeedMore when the answer depends on text that has not
# arrived yet; the stream then waits. So a decision made early is always the one the whole
# text would give, which is what makes streaming and batch cutting agree.


class _NeedMore(Exception):
    """The decision depends on text that has not streamed in yet."""


@dataclass(frozen=True)
class _View:
    words: list[str]  # complete words: followed by whitespace, or the text is final
    gaps: list[str]  # whitespace after each complete word (final once the next word starts)
    partial: str  # a word still streaming in; its first character is already certain
    final: bool

    def word(self, i: int) -> str | None:
        """Word ``i``, or None past the end of a final text."""
        if i < len(self.words):
            return self.words[i]
        if self.final:
            return None
        raise _NeedMore

    def known(self, i: int) -> str:
        """Word ``i``, which the caller knows exists (it may still be streaming in)."""
        if i < len(self.words):
            return self.words[i]
        raise _NeedMore

    def has_word(self, i: int) -> bool:
        """Whether there is a word ``i``; one that has started streaming in counts."""
        if i < len(self.words) or (i == len(self.words) and self.partial):
            return True
        if self.final:
            return False
        raise _NeedMore

    def next_initial(self, i: int) -> str | None:
        """First character of the word after word ``i``, or None at the end of the text."""
        if i + 1 < len(self.words):
            return self.words[i + 1][0]
        if self.partial:
            return self.partial[0]
        if self.final:
            return None
        raise _NeedMore

    def newline_after(self, i: int) -> bool:
        self.next_initial(i)  # the gap can still grow until the next word starts
        return "\n" in self.gaps[i]


def _view(text: str, final: bool) -> tuple[_View, list[int]]:
    """The view of ``text`` and the offset where each of its words (and the partial) starts."""
    matches = list(_WORD.finditer(text))
    partial = ""
    if matches and not final and matches[-1].end() == len(text):
        partial = matches[-1].group()
        complete = matches[:-1]
    else:
        complete = matches
    gap_ends = [m.start() for m in matches[1:]] + [len(text)]
    gaps = [text[m.end() : gap_ends[k]] for k, m in enumerate(complete)]
    view = _View([m.group() for m in complete], gaps, partial, final)
    return view, [m.start() for m in matches]


def _drain(
    text: str, first: bool, final: bool, first_max_words: int, max_chars: int
) -> tuple[list[str], str, bool]:
    """Cut every chunk that is certain; return them, the text left over, and whether the next
    chunk is still the first."""
    chunks: list[str] = []
    while True:
        view, starts = _view(text, final)
        try:
            if view.word(0) is None:
                return chunks, "", first
            size = (
                _first_chunk(view, first_max_words, max_chars)
                if first
                else _later_chunk(view, max_chars)
            )
            view.known(size - 1)  # a chunk ends with a complete word
        except _NeedMore:
            return chunks, text, first
        chunks.append(" ".join(view.words[:size]))
        text = text[starts[size] :] if size < len(starts) else ""
        first = False


def _text_len(words: list[str]) -> int:
    return sum(len(w) for w in words) + max(0, len(words) - 1)


def _is_abbreviation(core: str) -> bool:
    """``core`` ends with a period that does not end a sentence."""
    token = core.lstrip(_OPENERS)
    stem = token[:-1].lower()
    return (
        stem in _ABBREVIATIONS
        or _DOTTED.fullmatch(token) is not None
        or _INITIAL.fullmatch(token) is not None
        or _LIST_NUMBER.fullmatch(token) is not None
    )


def _sentence_ends_after(v: _View, i: int) -> bool:
    """Whether a sentence ends after (known) word ``i``."""
    core = v.known(i).rstrip(_CLOSERS)
    if core.endswith(_HARD_ENDS):
        return True
    if core.endswith(_ELLIPSES) or (core.endswith(".") and not _is_abbreviation(core)):
        initial = v.next_initial(i)
        # "Inc. and more", "well... maybe": a lowercase word goes on with the sentence.
        return initial is None or not initial.islower()
    return v.newline_after(i)


def _sentence(v: _View, start: int, budget: int) -> tuple[int, bool]:
    """Walk the sentence that starts at word ``start`` while it fits ``budget`` characters.

    Returns ``(end, True)`` when ``words[start:end]`` is the whole sentence (``end == start``
    only at the end of the text), or ``(end, False)`` when ``words[end]`` is the first word that
    does not fit.
    """
    size = -1  # no space before the first word
    i = start
    while True:
        word = v.word(i)
        if word is None:
            return i, True
        size += 1 + len(word)
        if size > budget:
            return i, False
        if _sentence_ends_after(v, i):
            return i + 1, True
        i += 1


def _continues(v: _View, i: int, count: int) -> bool:
    """Whether the sentence of (known) word ``i`` has ``count`` words from ``i`` on."""
    for j in range(i, i + count - 1):
        if _sentence_ends_after(v, j) or not v.has_word(j + 1):
            return False
    return True


def _breaks_after(word: str) -> bool:
    core = word.rstrip(_CLOSERS)
    return word in _DASH_TOKENS or core.endswith(",") or core.endswith(_DASH_ENDS)


def _is_conjunction(word: str) -> bool:
    return word.strip(_OPENERS + _CLOSERS).lower() in _CONJUNCTIONS


def _clause_cut(v: _View, cut: int) -> bool:
    """Whether a clause boundary lies before word ``cut`` (both neighbours known and in the same
    sentence), with enough of the sentence left after it to be worth a cut."""
    before, after = v.known(cut - 1), v.known(cut)
    if _breaks_after(before) or (after[0] in _DASHES and after not in _DASH_TOKENS):
        return _continues(v, cut, MIN_TAIL_WORDS)
    if _is_conjunction(after):
        # "…and so on." is no clause; the conjunction needs words of its own after it.
        return _continues(v, cut, 1 + MIN_TAIL_WORDS)
    return False


def _first_chunk(v: _View, first_max_words: int, max_chars: int) -> int:
    size = _first_cut(v, first_max_words)
    if _text_len(v.words[:size]) > max_chars:  # absurdly long words: fall back to char limits
        end, _ = _sentence(v, 0, max_chars)
        return _split_long(v, end, max_chars)
    return size


def _first_cut(v: _View, n: int) -> int:
    for i in range(n):
        if v.word(i) is None:
            return i
        if _sentence_ends_after(v, i):
            return i + 1  # a short first sentence goes out whole, unmerged, for latency
    if not v.has_word(n):
        return n
    # The first sentence has more than n words. Too early a cut ("Well,") sounds choppy.
    shortest = max(1, min(n, max(2, (n + 1) // 2)))
    for cut in range(shortest, 2 * n + 1):
        if cut > n and (_sentence_ends_after(v, cut - 1) or not v.has_word(cut)):
            break  # the sentence ended before any clause boundary
        if _clause_cut(v, cut):
            return cut
    if _continues(v, n, MIN_TAIL_WORDS):
        return n
    end, _ = _sentence(v, 0, 1 << 62)  # only a word is left over: keep the sentence whole
    return end


def _later_chunk(v: _View, max_chars: int) -> int:
    end, whole = _sentence(v, 0, max_chars)
    if not whole:
        return _split_long(v, end, max_chars)
    size = _text_len(v.words[:end])
    while size < MERGE_BELOW_CHARS:
        next_end, next_whole = _sentence(v, end, max_chars - size - 1)
        if not next_whole or next_end == end:  # the next sentence does not fit, or none is left
            break
        size += 1 + _text_len(v.words[end:next_end])
        end = next_end
    return end


def _split_long(v: _View, overflow: int, max_chars: int) -> int:
    """Cut a sentence longer than ``max_chars``; ``words[overflow]`` is its first word that does
    not fit."""
    if overflow == 0:
        return 1  # a single word longer than max_chars (a URL) goes out alone
    # Prefer the last clause boundary that fits, unless it leaves a stub of a chunk.
    shortest = min(MERGE_BELOW_CHARS, max_chars // 4)
    for cut in range(overflow, 0, -1):
        if _text_len(v.words[:cut]) < shortest:
            break
        if _clause_cut(v, cut):
            return cut
    return overflow


def _check_limits(first_max_words: int, max_chars: int) -> None:
    if first_max_words < 1:
        raise ValueError(f"first_max_words must be at least 1, got {first_max_words}")
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
