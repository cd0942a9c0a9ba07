"""Tests of poolvae.text: the alphabet, one-hot round trips, the generated strings and the CUB vocabulary."""

import itertools

import numpy as np
import pytest
import torch

from poolvae import text as tx


def test_alphabet_keeps_first_occurrence_of_the_repeated_hyphen():
    original = "".join(tx.ORIGINAL_ALPHABET)
    assert len(original) == 71 and original.count("-") == 2
    assert len(tx.ALPHABET) == 70 == len(set(tx.ALPHABET))
    assert tx.ALPHABET.index("-") == original.index("-") == 36
    # The original one-hot column of a character is str.find; ours equals it, shifted left by one
    # after the dead column of the second hyphen.
    dead = original.rfind("-")
    for c in tx.ALPHABET:
        col = original.find(c)
        assert tx.ALPHABET.index(c) == col - (col > dead)
    assert tx.dedupe_alphabet("abcab") == "abc"


def test_one_hot_round_trip_and_shape():
    s = "arched eyebrows, smiling***"
    x = tx.one_hot_encode(s)
    assert x.shape == (len(s), 70) and x.dtype == torch.float32
    assert torch.equal(x.sum(1), torch.ones(len(s)))
    assert tx.one_hot_decode(x) == s
    assert tx.one_hot_decode(torch.randn(5, 70) + 10 * tx.one_hot_encode("hello")) == "hello"


def test_one_hot_rejects_unknown_characters_and_wrong_lengths():
    with pytest.raises(ValueError, match="not in the alphabet"):
        tx.one_hot_encode("Zebra")  # upper case is not in the alphabet
    with pytest.raises(ValueError, match="expected 8"):
        tx.one_hot_encode("seven", length=8)


@pytest.mark.parametrize("label", range(10))
def test_every_digit_text_round_trips_at_every_start(label):
    word = tx.DIGIT_WORDS[label]
    for start in range(0, tx.MST_LENGTH - len(word) + 1):
        s = tx.digit_text(label, start)
        assert len(s) == 8 and s.strip() == word and s.index(word) == start
        assert tx.one_hot_decode(tx.one_hot_encode(s, length=8)) == s


def test_digit_text_starts_follow_the_originals_range():
    # random.randint(0, len_seq - 1 - len(word)): both ends included, so the last position stays blank.
    labels = np.repeat(np.arange(10), 400)
    starts = tx.digit_text_starts(labels, np.random.default_rng(0))
    for c, word in enumerate(tx.DIGIT_WORDS):
        seen = set(starts[labels == c].tolist())
        assert seen == set(range(0, tx.MST_LENGTH - len(word))), word
    assert tx.digit_text(3, 2).endswith(" ")


def test_celeba_text_is_lower_case_comma_joined_and_padded_with_stars():
    names = ["5_o_Clock_Shadow", "Arched_Eyebrows", "Bald", "Wearing_Hat"]
    t = tx.attribute_text(names, [True, False, False, True])
    assert t == "5 o clock shadow, wearing hat"
    s = tx.celeba_text(names, [True, False, False, True], start=10)
    assert len(s) == 256 and s[:10] == "*" * 10 and s[10 : 10 + len(t)] == t
    assert set(s[10 + len(t) :]) == {"*"}
    assert tx.strip_padding(s, "*") == t
    assert tx.one_hot_decode(tx.one_hot_encode(s, length=256)) == s
    assert tx.attribute_text(names, [False] * 4) == ""
    assert len(tx.attribute_text(["A_Very_Long_Attribute_Name"] * 40, [True] * 40)) == 256  # cut
    with pytest.raises(ValueError, match="does not fit"):
        tx.place(t, 256, 256 - len(t) + 1, "*")


def test_tokenizer_lower_cases_and_splits_on_non_letters():
    words = ["this", "bird", "s", "wing", "bars", "are", "white"]
    assert tx.tokenize("This bird's wing-bars are WHITE.") == words
    assert tx.tokenize("  a  2nd\tcaption,\n") == ["a", "nd", "caption"]


def test_vocabulary_keeps_words_seen_more_than_min_count_in_first_seen_order():
    captions = ["red bird"] * 4 + ["blue bird"] * 3 + ["green"]
    v = tx.Vocabulary.build(captions, min_count=3)
    # "red" 4 times and "bird" 7 times are kept; "blue" exactly 3 times and "green" once are not.
    assert v.words == ("<unk>", "<pad>", "<eos>", "red", "bird")
    assert v.encode("red blue bird", max_length=6) == [3, 0, 4, 2, 1, 1]


def test_vocabulary_encode_decode_round_trip_and_truncation():
    words = ["small", "bird", "with", "a", "red", "crown", "and", "white", "belly"]
    v = tx.Vocabulary.build([" ".join(words)] * 5)
    caption = "A small bird, with a RED crown and a white belly."
    x = v.one_hot(caption)
    assert x.shape == (32, len(v))
    assert v.decode_one_hot(x) == " ".join(tx.tokenize(caption))
    long = " ".join(itertools.islice(itertools.cycle(words), 50))
    idx = v.encode(long, max_length=32)
    assert len(idx) == 32 and idx[-1] == v.index["<eos>"] and v.index["<pad>"] not in idx
    assert v.decode(idx) == " ".join(long.split()[:31])
    assert v.decode(v.encode("a blue bird"), keep_special=True).startswith("a <unk> bird <eos> <pad>")
