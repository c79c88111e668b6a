# Copyright 2026 spatialvla_ros authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""
Instruction tokenizer: a tiny word-level one for tiny models, or any local HF tokenizer.

The tiny configs have a 256-word vocabulary, so tests and demos build a word-level tokenizer from
the task words and save it as a normal transformers tokenizer directory; the 7B presets load the
LLaVA-3D (Llama) tokenizer from its local directory through the same `load_tokenizer`.
"""

import os

import tokenizers
from tokenizers import decoders
from tokenizers import models
from tokenizers import normalizers
from tokenizers import pre_tokenizers
from tokenizers import processors
import torch
import transformers

PAD_TOKEN = '<pad>'
UNK_TOKEN = '<unk>'
BOS_TOKEN = '<s>'
SPECIAL_TOKENS = (PAD_TOKEN, UNK_TOKEN, BOS_TOKEN)  # ids 0, 1, 2


def _pipeline():
    # Lowercase, then split into runs of word characters and runs of punctuation.
    return normalizers.Lowercase(), pre_tokenizers.Whitespace()


def build_word_tokenizer(words, save_dir):
    """
    Build a word-level tokenizer over `words` and save it as a transformers tokenizer dir.

    Each entry of `words` is normalised and split like instructions are (so 'Pick-up' adds
    'pick', '-' and 'up'); ids follow first appearance after <pad>=0, <unk>=1, <s>=2.
    Encoding adds <s> in front. Unknown words map to <unk>.

    Gives the tokenizer (PreTrainedTokenizerFast) as AutoTokenizer.from_pretrained(save_dir)
    will load it.
    """
    if isinstance(words, str) or not all(isinstance(w, str) for w in words):
        raise TypeError('words: expected a list of strings')
    normalizer, pre_tokenizer = _pipeline()
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for word in words:
        for piece, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(word)):
            vocab.setdefault(piece, len(vocab))
    tok = tokenizers.Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK_TOKEN))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.WordPiece(prefix='##')  # joins words with spaces
    tok.post_processor = processors.TemplateProcessing(
        single=f'{BOS_TOKEN} $A', pair=f'{BOS_TOKEN} $A $B',
        special_tokens=[(BOS_TOKEN, vocab[BOS_TOKEN])])
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS_TOKEN, unk_token=UNK_TOKEN, pad_token=PAD_TOKEN,
        padding_side='right', truncation_side='right')
    os.makedirs(save_dir, exist_ok=True)
    fast.save_pretrained(save_dir)
    return fast


def load_tokenizer(path):
    """Load a tokenizer from a local directory only (no hub); errors name the path."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise ValueError(f'tokenizer path {path!r}: not a directory (expected a local '
                         'tokenizer directory with tokenizer.json / tokenizer_config.json)')
    try:
        return transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise ValueError(f'tokenizer path {path!r}: cannot load a tokenizer: {exc}') from exc


def tokenize_instructions(tokenizer, texts, max_len):
    """
    Tokenise instructions into a fixed-length, right-padded batch.

    Each row is [BOS (if the tokenizer has one)] + the text's tokens, truncated to max_len,
    then padded with the pad id (unk, else 0, for tokenizers without a pad token).

    Gives input_ids (B, max_len) long and attention_mask (B, max_len) bool, on the CPU.
    """
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise TypeError('texts: expected a list of instruction strings')
    if not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f'max_len: got {max_len!r}, expected an integer >= 1')
    bos = tokenizer.bos_token_id
    pad = next((t for t in (tokenizer.pad_token_id, tokenizer.unk_token_id) if t is not None), 0)
    ids = torch.full((len(texts), max_len), pad, dtype=torch.long)
    mask = torch.zeros((len(texts), max_len), dtype=torch.bool)
    encoded = tokenizer(list(texts), add_special_tokens=False)['input_ids'] if texts else []
    for row, seq in enumerate(encoded):
        seq = ([bos] if bos is not None else []) + list(seq)
        seq = seq[:max_len]
        ids[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, :len(seq)] = True
    return ids, mask


__all__ = [
    'BOS_TOKEN', 'PAD_TOKEN', 'SPECIAL_TOKENS', 'UNK_TOKEN', 'build_word_tokenizer',
    'load_tokenizer', 'tokenize_instructions',
]
