"""Text modalities: the character and word encodings of MNIST-SVHN-Text, bimodal CelebA and CUB.

Three text modalities appear in the two papers, and each is a fixed-length sequence of one-hot rows,
modelled by a one-hot categorical likelihood per position:

==================  ===========  ======  =====================================================
data set            unit         length  alphabet / vocabulary
==================  ===========  ======  =====================================================
MNIST-SVHN-Text     character    8       :data:`ALPHABET` (70 characters)
bimodal CelebA      character    256     :data:`ALPHABET`
CUB Image-Captions  word         32      words seen more than 3 times + ``<unk> <pad> <eos>``
==================  ===========  ======  =====================================================

**The alphabet.** Sutter et al. (2020, 2021) read their alphabet from a file ``alphabet.json`` of 71
entries: the character-CNN alphabet of Zhang et al. (2015) plus space and newline. The hyphen ``-`` is in
it twice (after ``9`` and after ``+``). Their one-hot had 71 columns, but the column of the second
hyphen could never be set, because ``str.find`` returns the first occurrence. We keep the first
occurrence and drop the dead column (:func:`dedupe_alphabet`), so our one-hot has 70 columns. Every
string is encoded as before, except that the 11 columns after the dropped one (``= < > ( ) [ ] { }``,
space, newline) move one place to the left. :data:`ORIGINAL_ALPHABET` keeps the 71-entry list.
Unlike the originals, which left a row all-zero for a character outside the alphabet, we raise an
error: every string these data sets generate is inside the alphabet, and a silent zero row would
not survive an encode/decode round trip.

**CUB words.** The originals (Shi et al. 2019, MMVAE; Palumbo et al. 2023, MMVAE+) tokenised with
NLTK. We use a documented tokenizer with no NLP dependency (:func:`tokenize`): lower case, then
every maximal run of letters a-z is a word, and everything else (digits, punctuation, spaces)
separates words. It drops the punctuation tokens that NLTK kept (``,`` and ``.``), so our vocabulary is
a little smaller than theirs. The rest follows the originals: the vocabulary is built from the
training captions only, keeps the words seen **more than** ``min_count = 3`` times in first-seen
order, after three special tokens at indices 0, 1, 2 (``<unk>``, which the originals called
``<exc>``, then ``<pad>`` and ``<eos>``); a caption is cut to ``max_length - 1`` words, gets ``<eos>``,
and is padded with ``<pad>`` to ``max_length = 32``.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

#: The 71 entries of the original ``alphabet.json`` of Sutter et al., in file order ('-' twice).
ORIGINAL_ALPHABET: tuple[str, ...] = (
    tuple("abcdefghijklmnopqrstuvwxyz")
    + tuple("0123456789")
    + tuple("-,;.!?:'\"\\/|_@#$%^&*~`+-=<>()[]{}")
    + (" ", "\n")
)


def dedupe_alphabet(chars: Iterable[str]) -> str:
    """The characters in order with repeats removed, keeping each character's first occurrence."""
    return "".join(dict.fromkeys(chars))


#: The alphabet of MNIST-SVHN-Text and bimodal CelebA: :data:`ORIGINAL_ALPHABET` without the second '-'.
ALPHABET: str = dedupe_alphabet(ORIGINAL_ALPHABET)

#: English number words of the MNIST-SVHN-Text text modality, indexed by digit.
DIGIT_WORDS: tuple[str, ...] = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"
)

#: Length of the MNIST-SVHN-Text strings and its padding character.
MST_LENGTH, MST_PAD = 8, " "
#: Length of the bimodal CelebA strings and its padding character.
CELEBA_LENGTH, CELEBA_PAD = 256, "*"


# --------------------------------------------------------------------------------------------------
# Characters: one-hot over an alphabet
# --------------------------------------------------------------------------------------------------


def one_hot_encode(text: str, alphabet: str = ALPHABET, length: int | None = None) -> Tensor:
    """One-hot encode a string: row ``i`` has a 1 in the column of ``text[i]``.

    Returns a float32 tensor of shape ``(length, len(alphabet))``; ``length`` defaults to
    ``len(text)`` and must equal it (pad the string first, see :func:`place`). A character outside the
    alphabet raises ``ValueError``.
    """
    if length is not None and len(text) != length:
        raise ValueError(f"text has {len(text)} characters, expected {length}: {text!r}")
    lookup = {c: i for i, c in enumerate(alphabet)}
    try:
        cols = [lookup[c] for c in text]
    except KeyError as err:
        raise ValueError(f"character {err.args[0]!r} of {text!r} is not in the alphabet") from None
    out = torch.zeros(len(text), len(alphabet))  # (L, A)
    out[torch.arange(len(text)), torch.tensor(cols, dtype=torch.long)] = 1.0
    return out


def one_hot_decode(one_hot: Tensor, alphabet: str = ALPHABET) -> str:
    """Inverse of :func:`one_hot_encode`: the arg-max character of each row of an ``(L, A)`` tensor
    (also accepts logits or probabilities)."""
    if one_hot.ndim != 2 or one_hot.shape[1] != len(alphabet):
        raise ValueError(f"expected shape (L, {len(alphabet)}), got {tuple(one_hot.shape)}")
    return "".join(alphabet[i] for i in one_hot.argmax(dim=1).tolist())


def place(word: str, length: int, start: int, pad: str) -> str:
    """``word`` written into a string of ``length`` pad characters, starting at position ``start``."""
    if not 0 <= start <= length - len(word):
        raise ValueError(f"start {start} does not fit {word!r} into {length} characters")
    return pad * start + word + pad * (length - start - len(word))


def digit_text(label: int, start: int, length: int = MST_LENGTH) -> str:
    """MNIST-SVHN-Text string of a digit: its English word at ``start`` in ``length`` spaces.

    Sutter et al. (2020) draw ``start`` uniformly from ``0 .. length - 1 - len(word)`` (Python's
    ``random.randint``, both ends included), so the word never touches the last position;
    :func:`digit_text_starts` draws from the same range.
    """
    return place(DIGIT_WORDS[int(label)], length, start, MST_PAD)


def digit_text_starts(labels: np.ndarray, rng: np.random.Generator, length: int = MST_LENGTH) -> np.ndarray:
    """One start position per label, uniform on ``0 .. length - 1 - len(word)`` (the originals' range)."""
    highs = np.array([length - len(w) for w in DIGIT_WORDS])[np.asarray(labels)]  # exclusive bound
    return rng.integers(0, highs).astype(np.int64)


def attribute_phrase(name: str) -> str:
    """CelebA attribute name to text: lower case, underscores to spaces (``Arched_Eyebrows`` ->
    ``arched eyebrows``)."""
    return name.lower().replace("_", " ")


def attribute_text(names: Sequence[str], present: Sequence[bool], length: int = CELEBA_LENGTH) -> str:
    """The bimodal CelebA sentence of one face, before padding: its present attributes, in the order
    of the attribute file, joined by ``", "`` and cut to ``length`` characters (Sutter et al. 2020)."""
    return ", ".join(attribute_phrase(n) for n, p in zip(names, present, strict=True) if p)[:length]


def celeba_text(
    names: Sequence[str], present: Sequence[bool], start: int, length: int = CELEBA_LENGTH
) -> str:
    """The padded bimodal CelebA string: :func:`attribute_text` at ``start`` in ``length`` '*'."""
    return place(attribute_text(names, present, length), length, start, CELEBA_PAD)


def strip_padding(text: str, pad: str) -> str:
    """A padded string without its padding characters at either end."""
    return text.strip(pad)


# --------------------------------------------------------------------------------------------------
# Words: the CUB caption vocabulary
# --------------------------------------------------------------------------------------------------

_WORD = re.compile(r"[a-z]+")

UNK, PAD, EOS = "<unk>", "<pad>", "<eos>"
SPECIAL_TOKENS = (UNK, PAD, EOS)


def tokenize(caption: str) -> list[str]:
    """Lower-case ``caption`` and return its maximal runs of the letters a-z (everything else
    separates words): ``"This bird's wing-bars are WHITE."`` ->
    ``[this, bird, s, wing, bars, are, white]``."""
    return _WORD.findall(caption.lower())


@dataclass(frozen=True)
class Vocabulary:
    """Word <-> index map of CUB captions; indices 0, 1, 2 are ``<unk>``, ``<pad>``, ``<eos>``."""

    words: tuple[str, ...]  # index -> word, special tokens first

    @classmethod
    def build(cls, captions: Iterable[str], min_count: int = 3) -> Vocabulary:
        """Vocabulary of the words seen **more than** ``min_count`` times, in first-seen order
        (as the originals' ``OrderedCounter``), after the three special tokens."""
        counts = Counter()
        for caption in captions:
            counts.update(tokenize(caption))  # Counter keeps first-seen order (dicts are ordered)
        kept = tuple(w for w, n in counts.items() if n > min_count and w not in SPECIAL_TOKENS)
        return cls(SPECIAL_TOKENS + kept)

    def __len__(self) -> int:
        return len(self.words)

    @functools.cached_property
    def index(self) -> dict[str, int]:
        """word -> index (computed once)."""
        return {w: i for i, w in enumerate(self.words)}

    def encode(self, caption: str, max_length: int = 32) -> list[int]:
        """Token indices of a caption: at most ``max_length - 1`` words, then ``<eos>``, then ``<pad>``
        up to ``max_length``; a word outside the vocabulary becomes ``<unk>``."""
        index = self.index
        words = tokenize(caption)[: max_length - 1] + [EOS]
        words += [PAD] * (max_length - len(words))
        return [index.get(w, index[UNK]) for w in words]

    def decode(self, indices: Iterable[int], keep_special: bool = False) -> str:
        """Words of token indices joined by spaces; unless ``keep_special``, stops at ``<eos>`` and
        leaves out ``<pad>`` (``<unk>`` is kept: it stands for a word)."""
        out = []
        for i in indices:
            w = self.words[int(i)]
            if not keep_special:
                if w == EOS:
                    break
                if w == PAD:
                    continue
            out.append(w)
        return " ".join(out)

    def one_hot(self, caption: str, max_length: int = 32) -> Tensor:
        """One-hot ``(max_length, len(self))`` float32 tensor of :meth:`encode`."""
        idx = torch.tensor(self.encode(caption, max_length), dtype=torch.long)
        return torch.nn.functional.one_hot(idx, len(self.words)).float()

    def decode_one_hot(self, one_hot: Tensor) -> str:
        """Inverse of :meth:`one_hot` (arg-max per row; accepts logits or probabilities)."""
        return self.decode(one_hot.argmax(dim=-1).tolist())
