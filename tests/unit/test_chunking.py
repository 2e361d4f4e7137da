import itertools
import math
import random

import pytest

from stella_services.tts.chunking import (
    MERGE_BELOW_CHARS,
    ChunkStream,
    speech_chunks,
    spoken_prefix,
)

# --- whole texts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "chunks"),
    [
        # A short first sentence goes out alone, however short the next one is.
        ("Hi.", ["Hi."]),
        ("Sure! What dates work for you?", ["Sure!", "What dates work for you?"]),
        (
            "Okay. Let me check that for you right now.",
            ["Okay.", "Let me check that for you right now."],
        ),
        # Exactly first_max_words words: whole.
        ("One two three four five six.", ["One two three four five six."]),
        # One word over: cutting would strand a single word, so the sentence stays whole.
        ("One two three four five six seven.", ["One two three four five six seven."]),
        # Two words over and no clause boundary: cut after first_max_words words.
        (
            "One two three four five six seven eight.",
            ["One two three four five six", "seven eight."],
        ),
        # First clause boundary: a comma...
        (
            "Let me see, the flight leaves at 9:30 tomorrow morning.",
            ["Let me see,", "the flight leaves at 9:30 tomorrow morning."],
        ),
        # ...a dash (an em dash token)...
        (
            "Wait \u2014 I think that's wrong, let me recheck the numbers.",
            ["Wait \u2014 I think that's wrong,", "let me recheck the numbers."],
        ),
        # ...or a conjunction followed by enough words.
        ("I found it and it is great.", ["I found it", "and it is great."]),
        (
            "I looked everywhere for the keys and found them.",
            ["I looked everywhere for the keys", "and found them."],
        ),
        (
            "The weather in the city is lovely today because the sun is out and the wind is calm.",
            [
                "The weather in the city is lovely today",
                "because the sun is out and the wind is calm.",
            ],
        ),
        # No boundary within twice first_max_words words: cut after first_max_words words.
        (
            "Hmm\u2026 let me think about that one for a moment please.",
            ["Hmm\u2026 let me think about that", "one for a moment please."],
        ),
        (
            "Yes, I can absolutely help you with booking that flight to Paris.",
            ["Yes, I can absolutely help you", "with booking that flight to Paris."],
        ),
        # Later short sentences merge until the chunk reaches MERGE_BELOW_CHARS.
        (
            "It costs 3.5 dollars. It is cheap. Buy two. Or three. "
            "Thanks a lot for asking me about it! Bye now.",
            [
                "It costs 3.5 dollars.",
                "It is cheap. Buy two. Or three. Thanks a lot for asking me about it!",
                "Bye now.",
            ],
        ),
        # Soft breaks ; and : end sentences.
        (
            "Here is the plan: we go now; they follow later. Okay?",
            ["Here is the plan:", "we go now; they follow later. Okay?"],
        ),
        # Line breaks end sentences too (headings, lists without punctuation).
        (
            "First line here\nSecond line here\nThird line here",
            ["First line here", "Second line here Third line here"],
        ),
        ('He said "stop." Then he left quietly.', ['He said "stop."', "Then he left quietly."]),
    ],
)
def test_speech_chunks(text: str, chunks: list[str]) -> None:
    assert speech_chunks(text) == chunks


@pytest.mark.parametrize(
    ("text", "chunks"),
    [
        # Numbers, money, times: the inner . , : are no boundaries.
        (
            "Your total is $1,200.50 today. The 3.5 GHz model ships at 9:30 on Monday.",
            ["Your total is $1,200.50 today.", "The 3.5 GHz model ships at 9:30 on Monday."],
        ),
        # Abbreviations are no sentence ends.
        (
            "Mr. Smith and Dr. Jones met at 4 p.m. in the U.S. office. Then they left.",
            [
                "Mr. Smith and Dr. Jones met",
                "at 4 p.m. in the U.S. office. Then they left.",
            ],
        ),
        (
            "Bring snacks, e.g. fruit. Or nuts, i.e. almonds.",
            ["Bring snacks, e.g. fruit.", "Or nuts, i.e. almonds."],
        ),
        ("J. R. R. Tolkien wrote it.", ["J. R. R. Tolkien wrote it."]),
        # A list number is no sentence of its own.
        ("1. Eggs 2. Milk 3. Bread", ["1. Eggs 2. Milk 3. Bread"]),
        # URLs and e-mail addresses stay whole; their final period still ends the sentence.
        (
            "Visit https://stella.example/docs?a=1.5 now. Or write to help@stella.example today.",
            [
                "Visit https://stella.example/docs?a=1.5 now.",
                "Or write to help@stella.example today.",
            ],
        ),
        # An ellipsis followed by a lowercase word goes on; followed by a capital it ends.
        ("Well... maybe not.", ["Well... maybe not."]),
        ("Well... I think so.", ["Well...", "I think so."]),
        ("Well\u2026 I think so.", ["Well\u2026", "I think so."]),
        # A period followed by a lowercase word is no end either ("Acme Inc. and ...").
        ("It is 5 ft. tall now.", ["It is 5 ft. tall now."]),
    ],
)
def test_never_split_inside_tokens_or_at_abbreviations(text: str, chunks: list[str]) -> None:
    assert speech_chunks(text) == chunks


@pytest.mark.parametrize("text", ["", " ", "\n\t  \n"])
def test_blank_text_has_no_chunks(text: str) -> None:
    assert speech_chunks(text) == []
    stream = ChunkStream()
    assert stream.push(text) == []
    assert stream.flush() == []


def test_whitespace_is_normalised_and_stripped() -> None:
    assert speech_chunks("  Hello   there!\t\tHow   are\nyou?  ") == [
        "Hello there!",
        "How are you?",
    ]


def test_a_conjunction_needs_words_after_it() -> None:
    # Two words after "and": a clause.
    assert speech_chunks("Bring the fresh bread and the jam.", first_max_words=3) == [
        "Bring the fresh bread",
        "and the jam.",
    ]
    # One word after "and" is no clause: the cut falls after first_max_words words instead.
    assert speech_chunks("Bring the fresh bread and jam.", first_max_words=3) == [
        "Bring the fresh",
        "bread and jam.",
    ]
    # Conjunctions are recognised whatever their case or surrounding quotes.
    assert speech_chunks("We packed the tents, AND the food too.", first_max_words=2) == [
        "We packed the tents,",
        "AND the food too.",
    ]


def test_first_clause_cut_is_neither_too_early_nor_too_late() -> None:
    # "Well," (one word) is too short a first chunk; the next boundary is taken.
    assert speech_chunks("Well, you know, it depends on the weather tomorrow.") == [
        "Well, you know,",
        "it depends on the weather tomorrow.",
    ]
    # A boundary after more than 2 * first_max_words words is too late.
    text = "One two three four five six seven eight nine ten eleven twelve thirteen, fourteen."
    assert speech_chunks(text) == [
        "One two three four five six",
        "seven eight nine ten eleven twelve thirteen, fourteen.",
    ]
    # Exactly 2 * first_max_words words is still in range.
    text = "One two three four five six seven eight nine ten eleven twelve, thirteen fourteen."
    assert speech_chunks(text) == [
        "One two three four five six seven eight nine ten eleven twelve,",
        "thirteen fourteen.",
    ]


@pytest.mark.parametrize(
    ("first_max_words", "chunks"),
    [
        (1, ["Alpha", "beta gamma delta epsilon zeta eta theta."]),
        (3, ["Alpha beta gamma", "delta epsilon zeta eta theta."]),
        (8, ["Alpha beta gamma delta epsilon zeta eta theta."]),
    ],
)
def test_first_max_words(first_max_words: int, chunks: list[str]) -> None:
    text = "Alpha beta gamma delta epsilon zeta eta theta."
    assert speech_chunks(text, first_max_words=first_max_words) == chunks


def test_short_later_sentences_merge_but_not_past_max_chars() -> None:
    text = "Hi. Yes. No. Maybe so. " + "A" * 50 + "."
    assert speech_chunks(text) == ["Hi.", "Yes. No. Maybe so. " + "A" * 50 + "."]
    # With max_chars 40 the long sentence no longer fits with the short ones.
    assert speech_chunks(text, max_chars=60) == ["Hi.", "Yes. No. Maybe so.", "A" * 50 + "."]
    # A later chunk stops taking sentences once it has MERGE_BELOW_CHARS characters.
    long_enough = "B" * (MERGE_BELOW_CHARS - 1) + "."
    assert speech_chunks(f"Hi. {long_enough} Next. Last.") == ["Hi.", long_enough, "Next. Last."]
    assert speech_chunks(f"Hi. {long_enough[1:]} Next. Last.") == [
        "Hi.",
        f"{long_enough[1:]} Next.",
        "Last.",
    ]


def test_long_sentences_split_at_the_last_clause_boundary_that_fits() -> None:
    text = (
        "Okay. The museum opens at nine in the morning, closes at six in the evening, "
        "and offers guided tours every hour because visitors asked for them last year."
    )
    assert speech_chunks(text, max_chars=80) == [
        "Okay.",
        "The museum opens at nine in the morning, closes at six in the evening,",
        "and offers guided tours every hour because visitors asked for them last year.",
    ]
    assert speech_chunks(text, max_chars=60) == [
        "Okay.",
        "The museum opens at nine in the morning,",
        "closes at six in the evening,",
        "and offers guided tours every hour",
        "because visitors asked for them last year.",
    ]
    assert speech_chunks(text) == [
        "Okay.",
        "The museum opens at nine in the morning, closes at six in the evening, "
        "and offers guided tours every hour because visitors asked for them last year.",
    ]


def test_long_sentences_without_boundaries_wrap_at_words() -> None:
    text = "Hello there. " + "Word " * 39 + "end."
    chunks = speech_chunks(text, max_chars=50)
    assert chunks[0] == "Hello there."
    assert chunks[1:] == [
        " ".join(["Word"] * 10),
        " ".join(["Word"] * 10),
        " ".join(["Word"] * 10),
        " ".join(["Word"] * 9 + ["end."]),
    ]
    assert all(len(c) <= 50 for c in chunks)


def test_a_word_longer_than_max_chars_goes_alone() -> None:
    url = "https://example.com/" + "x" * 120
    assert speech_chunks(f"Hi. {url} tail words here.", max_chars=100) == [
        "Hi.",
        url,
        "tail words here.",
    ]
    assert speech_chunks(url, max_chars=100) == [url]
    # Also as the first chunk, when even first_max_words words exceed max_chars.
    assert speech_chunks(f"See {url} now.", max_chars=100) == ["See", url, "now."]


@pytest.mark.parametrize(("first", "limit"), [(0, 220), (6, 0), (-1, -1)])
def test_limits_are_checked(first: int, limit: int) -> None:
    with pytest.raises(ValueError):
        speech_chunks("Hi.", first_max_words=first, max_chars=limit)
    with pytest.raises(ValueError):
        ChunkStream(first_max_words=first, max_chars=limit)


# --- properties over many texts ----------------------------------------------------------------

_VOCABULARY = [
    "the", "weather", "is", "lovely", "today", "I", "think", "we", "should", "go", "and", "but",
    "so", "because", "which", "or", "then", "maybe", "really", "booking", "flight", "Paris",
    "Mr.", "Dr.", "e.g.", "i.e.", "U.S.", "p.m.", "J.", "etc.", "3.5", "$1,200", "9:30", "1.",
    "https://a.example/x?y=1.5", "bob@mail.example", "...", "\u2026", "-", "\u2014", "--",
    "well-known", "it's", '"quoted"', "(aside)", "Hello.", "What?", "Wow!", "Stop!?", "note:",
    "first;", "okay,", "right...", "now\u2026", "yes.", "No.", '"Go."', "end.)", "x" * 70,
]  # fmt: skip
_GAPS = [" "] * 12 + ["  ", "\n", "\n\n", "\t", " \n "]


def _random_text(rng: random.Random) -> str:
    words = rng.choices(_VOCABULARY, k=rng.randint(0, 90))
    text = rng.choice(["", " ", "\n"])
    for word in words:
        text += word + rng.choice(_GAPS)
    return text if rng.random() < 0.5 else text.rstrip()


_HAND_TEXTS = [
    "Sure! I can help you with booking that flight to Paris next week. What dates work for you?",
    "I checked the calendar and found three open slots for your meeting tomorrow. The first is "
    "at 9:30, the second at 1 p.m. and the third at 4.",
    "Mr. Smith paid $1,200 for the 3.5 GHz laptop, e.g. the U.S. model. Then he left... and came "
    "back.",
    "Well... I think so. Visit https://example.com/a.b?x=1. Or email bob@example.com. Thanks!",
    "This is a rather long sentence that keeps going with many words, lots of clauses, and quite "
    "a few conjunctions, because the model likes to talk, and it really does not want to stop "
    "talking about the weather, the traffic, and the news, which is all rather boring but still "
    "needs to be spoken aloud in pieces that are not too long for the speech engine to handle.",
    "Okay.\n\nHere are your options:\n- a window seat\n- an aisle seat\n\nWhich one?",
]
_TEXTS = _HAND_TEXTS + [_random_text(random.Random(seed)) for seed in range(150)]
_SETTINGS = [(6, 220), (1, 30), (3, 60), (10, 120)]


@pytest.mark.parametrize(("first_max_words", "max_chars"), _SETTINGS)
def test_chunks_keep_every_word_in_order(first_max_words: int, max_chars: int) -> None:
    for text in _TEXTS:
        chunks = speech_chunks(text, first_max_words=first_max_words, max_chars=max_chars)
        assert " ".join(chunks).split() == text.split(), text
        for chunk in chunks:
            assert chunk and chunk == chunk.strip() and "  " not in chunk, text
            assert len(chunk) <= max_chars or len(chunk.split()) == 1, (text, chunk)
        if chunks:  # the first chunk is short (it may grow only to a clause boundary)
            assert len(chunks[0].split()) <= 2 * first_max_words or len(chunks[0]) <= max_chars


def test_the_first_chunk_has_at_most_twice_first_max_words_words() -> None:
    for text in _TEXTS:
        chunks = speech_chunks(text)
        if chunks:
            assert len(chunks[0].split()) <= 12, text


# --- streaming ---------------------------------------------------------------------------------


def _stream(pieces: list[str], first_max_words: int = 6, max_chars: int = 220) -> list[str]:
    stream = ChunkStream(first_max_words=first_max_words, max_chars=max_chars)
    out: list[str] = []
    for piece in pieces:
        out.extend(stream.push(piece))
    out.extend(stream.flush())
    return out


def _random_pieces(text: str, rng: random.Random) -> list[str]:
    cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, rng.randint(0, 30))))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def _llm_tokens(text: str) -> list[str]:
    # Like LLM deltas: whitespace rides at the front of the next token.
    pieces: list[str] = []
    for part in text.split(" "):
        pieces.extend([" ", part] if pieces else [part])
    return ["".join(pieces[i : i + 2]) for i in range(0, len(pieces), 2)]


@pytest.mark.parametrize(("first_max_words", "max_chars"), _SETTINGS)
def test_streaming_matches_whole_text_for_any_split(first_max_words: int, max_chars: int) -> None:
    rng = random.Random(f"{first_max_words}/{max_chars}")
    for text in _TEXTS:
        expected = speech_chunks(text, first_max_words=first_max_words, max_chars=max_chars)
        splits = [list(text), [text], _llm_tokens(text)]
        splits += [_random_pieces(text, rng) for _ in range(4)] if len(text) > 1 else []
        for pieces in splits:
            assert _stream(pieces, first_max_words, max_chars) == expected, (text, pieces)


def test_stream_returns_chunks_as_soon_as_they_are_certain() -> None:
    stream = ChunkStream()
    assert stream.push("Sure!") == []  # "!" might be followed by more punctuation
    assert stream.push(" ") == ["Sure!"]
    # A period must see the next word: a lowercase one would continue the sentence.
    assert stream.push("I can help you with that right now.") == []
    assert stream.push(" ") == []
    # At 35 characters, the chunk waits for the next sentence to merge with.
    assert stream.push("W") == []
    assert stream.push("hat dates work for you?") == []
    assert stream.push(" ") == ["I can help you with that right now. What dates work for you?"]
    assert stream.push("Tell me") == []
    assert stream.flush() == ["Tell me"]


def test_stream_cuts_the_first_clause_before_the_sentence_ends() -> None:
    stream = ChunkStream()
    assert stream.push("Let me see, the flight leaves") == []
    # The comma counts once the sentence is known to have more than six words.
    assert stream.push(" a") == ["Let me see,"]
    assert stream.push("t") == []
    assert stream.push(" 9:30 tomorrow morning.") == []
    assert stream.flush() == ["the flight leaves at 9:30 tomorrow morning."]


def test_stream_waits_for_a_conjunction_to_have_words_after_it() -> None:
    stream = ChunkStream(first_max_words=2)
    assert stream.push("I found it and it") == []  # "and it." would be no clause
    assert stream.push(" i") == ["I found it"]
    assert stream.push("s") == []
    assert stream.flush() == ["and it is"]
    # Indeed, when the sentence ends there, the cut falls after first_max_words words.
    assert speech_chunks("I found it and it.", first_max_words=2) == ["I found", "it and it."]


def test_flush_starts_a_new_text() -> None:
    stream = ChunkStream()
    assert stream.push("Hello there. How are") == ["Hello there."]
    assert stream.flush() == ["How are"]
    assert stream.flush() == []
    # The next text gets a short first chunk again.
    assert stream.push("One two three four five six seven eight nine ten") == []
    assert stream.push(" eleven twelve thirteen fourteen fifteen ") == [
        "One two three four five six"
    ]
    assert stream.flush() == ["seven eight nine ten eleven twelve thirteen fourteen fifteen"]


# --- what the user heard ----------------------------------------------------------------------

_CHUNKS = ["Sure!", "I can help you with that.", "What dates work for you?"]


@pytest.mark.parametrize(
    ("spoken", "fraction", "heard"),
    [
        (0, 0.0, ""),
        (0, 0.99, ""),  # "Sure!" is one word: 0.99 of it rounds down to nothing
        (0, 1.0, "Sure!"),
        (1, 0.0, "Sure!"),
        (1, 0.5, "Sure! I can help"),  # 6 words * 0.5 = 3
        (1, 0.49, "Sure! I can"),  # 2.94 -> 2
        (1, 0.34, "Sure! I can"),  # 2.04 -> 2
        (2, 0.6, "Sure! I can help you with that. What dates work"),  # 5 words * 0.6 = 3
        (3, 0.5, "Sure! I can help you with that. What dates work for you?"),  # all played
        (7, 0.5, "Sure! I can help you with that. What dates work for you?"),
        (1, -0.5, "Sure!"),  # out-of-range fractions are clamped
        (1, 3.0, "Sure! I can help you with that."),
        (1, math.nan, "Sure!"),
    ],
)
def test_spoken_prefix(spoken: int, fraction: float, heard: str) -> None:
    assert spoken_prefix(_CHUNKS, spoken, fraction) == heard


def test_spoken_prefix_is_not_fooled_by_float_noise() -> None:
    chunk = " ".join(f"w{i}" for i in range(100))
    assert len(spoken_prefix([chunk], 0, 0.29).split()) == 29  # 0.29 * 100 == 28.999...
    assert len(spoken_prefix([chunk], 0, 0.7).split()) == 70


def test_spoken_prefix_edges() -> None:
    assert spoken_prefix([], 0, 0.5) == ""
    with pytest.raises(ValueError):
        spoken_prefix(_CHUNKS, -1, 0.5)


def test_lead_in_splits_a_short_opening_off_the_first_chunk() -> None:
    from stella_services.tts.chunking import lead_in

    assert lead_in(["Sure, that works.", "Next."]) == ["Sure,", "that works.", "Next."]
    assert lead_in(["Okay — here it is."]) == ["Okay —", "here it is."]
    assert lead_in(["Okay so, here it is."], max_words=2) == ["Okay so,", "here it is."]
    assert lead_in(["Yes, fine."]) == ["Yes, fine."]  # too little would be left
    assert lead_in(["Your order, sadly, is late."]) == ["Your order, sadly, is late."]
    assert lead_in(["No commas here at all."]) == ["No commas here at all."]
    assert lead_in([]) == []
    text = "Sure, that works. Your order will arrive tomorrow before noon."
    from stella_services.tts.chunking import speech_chunks

    assert " ".join(lead_in(speech_chunks(text))) == text
