"""A character-level tokenizer built in-process (no files, no network).

Why: small models trained from scratch do arithmetic far better when every digit is
its own token; a BPE vocabulary merges "123" into one opaque id. The vocabulary is
fixed (specials, newline, printable ASCII), so ids are the same on every machine and a
checkpoint's tokenizer can always be rebuilt.
"""

from __future__ import annotations

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, EOS, UNK)
# Newline first (it is the step separator), then printable ASCII 0x20..0x7E in order.
CHARACTERS: tuple[str, ...] = ("\n", *(chr(c) for c in range(0x20, 0x7F)))


def char_vocab() -> dict[str, int]:
    """Token → id: specials 0..3, newline 4, printable ASCII from 5 (deterministic)."""
    return {tok: i for i, tok in enumerate((*SPECIAL_TOKENS, *CHARACTERS))}


def build_char_tokenizer() -> PreTrainedTokenizerFast:
    """One token per character; prompts start with ``<s>``; other characters map to ``<unk>``."""
    vocab = char_vocab()
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    # [\s\S] rather than "." so that the newline is split out too (Oniguruma regex).
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    # Fuse: concatenate pieces with no separator (WordLevel would otherwise join with spaces).
    tok.decoder = decoders.Fuse()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, vocab[BOS])]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        pad_token=PAD,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
    return fast
