"""tokenizer.py - the model's own byte-level BPE vocabulary (HF `tokenizers`).

Built like Llama-3's so the runtime's tokenizer reads it as it is, from
tokenizer.json or from the GGUF (tokenizer.ggml.pre "llama-bpe"): the Llama-3
split regex, then the GPT-2 byte-to-unicode mapping, and ignore_merges (a
pre-token that is itself in the vocabulary is one token). The two special
tokens carry Llama-3's names, so both loaders find BOS and EOS by name.
"""
import json

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

# core/tokenizer/split_regex.h BN_LLAMA3_SPLIT_REGEX, in HF (Rust regex) syntax
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| "
                r"?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
BOS, EOS = "<|begin_of_text|>", "<|end_of_text|>"


def train(text, vocab_size, path):
    """Trains on text, writes tokenizer.json to path, returns the Tokenizer."""
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[BOS, EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    # one "sentence" per paragraph keeps the trainer's word counts exact
    tok.train_from_iterator(text.split("\n\n"), trainer=trainer)
    # the trainer may reset model options: set ignore_merges in the saved form
    spec = json.loads(tok.to_str())
    spec["model"]["ignore_merges"] = True
    with open(path, "w", encoding="utf-8") as f:
        json.dump(spec, f, ensure_ascii=False)
    return Tokenizer.from_file(path)


def encode(tok, text):
    """Token ids of text, without BOS (the model adds BOS itself)."""
    return tok.encode(text, add_special_tokens=False).ids
