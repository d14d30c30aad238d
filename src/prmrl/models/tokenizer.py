"""A character-level tokenizer built with `tokenizers` and wrapped as a PreTrainedTokenizerFast.

The embedded task needs a tokenizer with no downloads; one token per character keeps the tiny
model small and makes step ends land exactly on a character. Saved with ``save_pretrained`` and
loaded with ``AutoTokenizer.from_pretrained`` like any real tokenizer.
"""

from __future__ import annotations

import string

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIALS = [PAD, BOS, EOS, UNK]
# Printable ASCII covers the arithmetic task and plain-text step filler.
CHARS = list(string.digits + string.ascii_letters + string.punctuation + " \n")


def build_char_tokenizer(chars: list[str] | None = None) -> PreTrainedTokenizerFast:
    chars = CHARS if chars is None else chars
    vocab = {tok: i for i, tok in enumerate(SPECIALS + chars)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    # Split into single characters, keeping every whitespace character as its own token.
    tok.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    tok.decoder = decoders.Fuse()
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
    return hf
