"""Emotion-bearing word lists of the synthetic speakers, and the lookup the oracle reads words with.

Each speaker emotion has its own lexicon; neutral filler words carry no emotion. The lists are disjoint,
so a word names at most one emotion. Words are lowercase; :func:`word_emotion` normalises case and strips
punctuation, so it also reads the env's ``"words"`` observation and real transcripts.
"""

from __future__ import annotations

import re

LEXICONS: dict[str, tuple[str, ...]] = {
    "happiness": (
        "wonderful", "great", "love", "amazing", "fantastic", "happy", "delighted", "lovely", "brilliant",
        "excited", "fun", "laughing", "beautiful", "perfect", "celebrate", "joy", "glad", "awesome",
        "sunshine", "party", "gift", "won", "hooray", "best", "cheerful", "thrilled", "smiling", "proud",
    ),
    "sadness": (
        "sad", "lost", "died", "funeral", "miss", "lonely", "cried", "crying", "grief", "sorry", "hurt",
        "broken", "alone", "tears", "goodbye", "empty", "heartbroken", "passed", "hospital", "sick",
        "failed", "gone", "unhappy", "mourning", "regret", "depressed", "painful", "weeping",
    ),
    "surprise": (
        "suddenly", "unbelievable", "wow", "shocked", "unexpected", "whoa", "incredible", "astonishing",
        "surprised", "sudden", "never", "imagine", "stunned", "speechless", "out", "nowhere", "believe",
        "unreal", "jumped", "gasp", "twist", "startled", "bizarre", "huge",
    ),
    "disgust": (
        "disgusting", "gross", "rotten", "vomit", "filthy", "smelly", "stink", "mold", "sewage", "slimy",
        "revolting", "nasty", "puke", "rats", "cockroach", "greasy", "maggots", "yuck", "sick-making",
        "stench", "rancid", "sticky", "dirty", "garbage", "sweaty", "hairy", "ew",
    ),
    "anger": (
        "furious", "angry", "hate", "unfair", "stupid", "liar", "yelled", "screamed", "outrageous",
        "ridiculous", "mad", "fight", "blame", "insulted", "rude", "cheated", "annoyed", "damn", "idiot",
        "slammed", "enough", "betrayed", "livid", "shouted", "argued", "never-again",
    ),
}  # fmt: skip

FILLERS: tuple[str, ...] = (
    "i", "you", "we", "they", "he", "she", "it", "the", "a", "an", "and", "but", "so", "then", "was",
    "were", "is", "are", "to", "of", "in", "on", "at", "with", "that", "this", "there", "my", "our",
    "your", "just", "like", "know", "mean", "went", "came", "said", "told", "about", "after", "before",
    "when", "what", "because", "really", "kind", "sort", "thing", "day", "week", "yesterday", "morning",
    "evening", "home", "work", "friend", "sister", "brother", "mother", "father", "car", "house",
    "street", "shop", "we're", "i'm", "um", "uh", "well", "okay", "right", "yeah", "actually", "anyway",
    "maybe", "also", "had", "have", "got", "get", "did", "do", "for", "from", "all", "some", "one", "two",
)  # fmt: skip

_EMOTION_OF: dict[str, str] = {word: emotion for emotion, words in LEXICONS.items() for word in words}
_STRIP = re.compile(r"^[^\w'-]+|[^\w'-]+$")


def normalize_word(text: str) -> str:
    """Lowercase ``text`` and strip surrounding punctuation (``"Gross!"`` -> ``"gross"``)."""
    return _STRIP.sub("", text.strip().lower())


def word_emotion(text: str) -> str | None:
    """The emotion a word carries (a key of :data:`LEXICONS`), or None for neutral words."""
    return _EMOTION_OF.get(normalize_word(text))
