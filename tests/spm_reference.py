"""spm_reference.py OUTDIR - a SentencePiece vocabulary and sentencepiece's own
encodings of ~200 strings, for `test_tokenizer_spm` (BITNET_SPM_REFERENCE=OUTDIR).

The independent side of the SentencePiece tokenizer (core/tokenizer/encode_spm.c):
the `sentencepiece` package trains a small BPE model on the built-in text below
with the options of the LLaMA tokenizer (BPE, byte fallback, identity
normalization, extra whitespace kept, dummy prefix, split digits, whitespace-
only pieces), and its encoder and decoder give the expected ids and text.

OUTDIR/vocab.gguf: the vocabulary as llama.cpp's convert script writes it
(tokenizer.ggml.model "llama", tokens, scores, token types, bos/eos/unk ids,
add_bos_token, add_space_prefix), with the `gguf` package; no tensors.

OUTDIR/cases.bin, all little-endian: b"BNSPMREF", uint32 count, then per case
uint32 text bytes + the UTF-8 text, uint32 n + n int32 ids (BOS + sp.encode(text),
as llama.cpp adds BOS), uint32 bytes + sp.decode(sp.encode(text)) in UTF-8.

llama.cpp's tokenizer and sentencepiece differ in a few places (docs/architecture.md,
Tokenizer and chat format); none of these cases reaches them: no user-defined
pieces (llama.cpp adds a space prefix after one), no text that a merge could
turn into a control or byte token's text, no "<unk>" (the vocabulary never
encodes to it with byte fallback; sentencepiece decodes it as " ⁇ "), and the
decoded text is always valid UTF-8 (sentencepiece would replace invalid bytes).
"""
import io
import os
import random
import struct
import sys

import sentencepiece as spm
from gguf import GGUFWriter, TokenType

# The training text: English prose, some other Latin-script languages, Greek,
# Cyrillic, CJK, emoji, digits and code. Characters outside the 99.5 % coverage
# and every character not in it fall back to bytes.
CORPUS = """
The quick brown fox jumps over the lazy dog. The dog did not mind; it was asleep.
Once upon a time there was a little village by the sea, where the fishermen went out every morning.
They would come back in the evening with baskets full of fish, and the children ran to meet them.
In the summer the tourists arrived, and the small harbour was filled with boats and laughter.
Language models read text as tokens: pieces of words that a tokenizer learns from a corpus.
A tokenizer that learns merges from pairs of symbols is called byte pair encoding, or BPE.
SentencePiece treats the input as a raw stream of characters, including the spaces between words.
It replaces each space with a visible marker so that the text can be restored exactly.
Numbers such as 3.14159, 2024, 1,000,000 and 42 are split into single digits.
Please call me at 555-0199 before 10:30 on Monday, 12 March 2024.
def tokenize(text): return [vocab[piece] for piece in text.split()]
if (x > 0 && y < 10) { printf("%d\\n", x + y); } else { return -1; }
    for piece in pieces:
        if  piece  in  vocab:   return  vocab[piece]
Two  spaces  after  each  word,  as  some  people  type.
The weather today is sunny with a chance of rain in the afternoon, and the wind is light.
Scientists have discovered a new species of frog in the rainforest; it is bright green and very small.
"Hello," she said, "how are you doing today?" He smiled and answered: "Fine, thanks!"
It's a beautiful day, isn't it? We're going to the park, and they'll meet us there.
Le café est très bon, et la crème brûlée aussi. Où est la bibliothèque, s'il vous plaît ?
Der Bär läuft über die Straße, und die Kinder spielen fröhlich im Garten.
El niño comió una manzana y después jugó al fútbol con sus amigos en la playa.
O coração da cidade bate mais forte à noite, quando as luzes se acendem.
Η γλώσσα είναι ένα σύστημα επικοινωνίας. Русский язык очень красивый и богатый.
机器学习是人工智能的一个分支。我们今天去公园散步，天气很好。
日本語の文章も少しだけ含まれています。東京は大きな都市です。
한국어 문장도 조금 있습니다. 오늘은 날씨가 좋습니다.
Emoji are fun 😀 🎉 👍 and sometimes people use them in every message 😀😀.
The cat sat on the mat, and the rat sat on the hat; that is all there is to it.
Reading and writing are skills that improve with practice, patience and good books.
The train leaves the station at seven o'clock, so we must hurry to catch it.
Music, painting, dance and poetry are all forms of art that people enjoy.
Water boils at 100 degrees Celsius and freezes at 0 degrees at sea level.
"""

TEXTS = [
    "",
    " ",
    "  ",
    "   ",
    "\t",
    "\n",
    "\n\n",
    " \n",
    "\n ",
    "a",
    "A",
    "Hello",
    "Hello world",
    " Hello world",
    "Hello world ",
    "  Hello  world  ",
    "Hello\nworld",
    "Hello\n\nworld\n",
    "Hello\tworld",
    "hello world, hello WORLD, Hello World!",
    "The quick brown fox jumps over the lazy dog.",
    "the quick brown fox jumps over the lazy dog",
    "THE QUICK BROWN FOX",
    "Once upon a time there was a little village by the sea.",
    "They would come back in the evening with baskets full of fish.",
    "Language models read text as tokens.",
    "tokenizer tokenizers tokenization tokenize tokenized",
    "SentencePiece treats the input as a raw stream of characters.",
    "It's a beautiful day, isn't it?",
    "We're going to the park, and they'll meet us there.",
    "\"Hello,\" she said, \"how are you doing today?\"",
    "(parentheses) [brackets] {braces} <angles>",
    "a.b,c;d:e!f?g",
    "...",
    "!!!???",
    "--- *** ___ ===",
    "@user #hashtag $100 50% a&b ~tilde ^caret `backtick` |pipe| \\backslash/",
    "0",
    "7",
    "42",
    "3.14159",
    "2024",
    "1,000,000",
    "555-0199",
    "10:30",
    "12 March 2024",
    "The year 1999 and the year 2000 and 123456789.",
    "x1 y22 z333 abc123def",
    "def tokenize(text): return [vocab[piece] for piece in text.split()]",
    "if (x > 0 && y < 10) { printf(\"%d\\n\", x + y); }",
    "    indented code line",
    "line one\n    line two\n\tline three",
    "trailing spaces   ",
    "   leading spaces",
    "multiple     spaces     between",
    " \t \n mixed whitespace \n \t ",
    "café",
    "Le café est très bon.",
    "crème brûlée",
    "Où est la bibliothèque, s'il vous plaît ?",
    "Der Bär läuft über die Straße.",
    "fröhlich Mädchen Öl Ärger Übung",
    "El niño comió una manzana.",
    "fútbol, jalapeño, señor, mañana",
    "O coração da cidade",
    "naïve résumé façade Noël",
    "Ångström Øresund Ælfred",
    "Η γλώσσα είναι ένα σύστημα επικοινωνίας.",
    "αβγδε ΑΒΓΔΕ",
    "Русский язык очень красивый.",
    "Привет, мир!",
    "机器学习是人工智能的一个分支。",
    "我们今天去公园散步",
    "天气很好",
    "中文 English 混合 text",
    "日本語の文章",
    "東京は大きな都市です。",
    "カタカナ ひらがな",
    "한국어 문장",
    "오늘은 날씨가 좋습니다.",
    "😀",
    "😀😀😀",
    "Emoji are fun 😀 🎉 👍",
    "🎉party🎉",
    "👍 ok",
    "👨‍👩‍👧‍👦 family",
    "🏳️‍🌈 flag",
    "❤️ ♥ ★ ☆ ✓ ✗",
    "→ ← ↑ ↓ ⇒ ∀ ∃ ∈ ∑ ∫ √ ∞ ≠ ≤ ≥",
    "½ ¼ ¾ ² ³ µ ° ± × ÷",
    "€ £ ¥ ₹ ₽ ¢",
    "© ® ™ § ¶ †",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕄𝕒𝕥𝕙",
    "𐍈 𓀀 𝄞",
    "ẞ ǅ ǈ ﬁ ﬂ",
    "Ω Å K",  # ohm, angstrom, kelvin signs: identity normalization keeps them
    "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３",
    "עברית שלום",
    "العربية مرحبا",
    "हिन्दी नमस्ते",
    "ไทย สวัสดี",
    "ქართული",
    "Tiếng Việt có dấu",
    "e\u0301 combining accent",
    "zero\u200bwidth space",
    "non\u00a0breaking space",
    "soft\u00adhyphen",
    "bell\u0007char",
    "carriage\rreturn",
    "form\ffeed",
    "vertical\vtab",
    "<s>",
    "</s>",
    "<s> hello </s>",
    "<0x41>",
    "▁",
    "▁hello",
    "hello▁world",
    "a▁ b",
    "The cat sat on the mat.",
    "Water boils at 100 degrees Celsius.",
    "The train leaves the station at seven o'clock.",
    "Music, painting, dance and poetry.",
    "Scientists have discovered a new species of frog.",
]


def generated_texts(rng, n):
    """Random mixtures of corpus words, foreign words, digits and odd spacing."""
    words = CORPUS.split()
    extra = ["😀", "🎉", "𝔘", "中", "ß", "é", "ñ", "Ω", "ж", "λ", "ı", "ŋ", "ð", "þ", "…",
             "—", "“", "”", "‘", "’", "«", "»", "\u3000", "٣", "४", "⁇", "\u2028", "🙂"]
    seps = [" ", " ", " ", " ", "  ", "\n", "\t", "", " \n", "   "]
    out = []
    for _ in range(n):
        k = rng.randint(1, 12)
        parts = []
        for _ in range(k):
            r = rng.random()
            if r < 0.6:
                w = rng.choice(words)
            elif r < 0.75:
                w = str(rng.randint(0, 10**rng.randint(1, 8)))
            elif r < 0.9:
                w = "".join(rng.choice(extra) for _ in range(rng.randint(1, 3)))
            else:
                w = rng.choice(words).upper()
            parts.append(w)
            parts.append(rng.choice(seps))
        if rng.random() < 0.5:
            parts.pop()
        if rng.random() < 0.2:
            parts.insert(0, rng.choice(seps))
        out.append("".join(parts))
    return out


def train():
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS.strip().split("\n")),
        model_writer=model,
        model_type="bpe",
        vocab_size=800,
        character_coverage=0.995,
        byte_fallback=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        split_by_unicode_script=True,
        split_by_whitespace=True,
        max_sentencepiece_length=16,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        hard_vocab_limit=False,
        num_threads=1,
        minloglevel=2,
    )
    return spm.SentencePieceProcessor(model_proto=model.getvalue())


def token_type(sp, i):
    # llama.cpp's convert script (_create_vocab_sentencepiece)
    if sp.is_unknown(i):
        return TokenType.UNKNOWN
    if sp.is_control(i):
        return TokenType.CONTROL
    if sp.is_unused(i):
        return TokenType.UNUSED
    if sp.is_byte(i):
        return TokenType.BYTE
    return TokenType.NORMAL


def write_vocab(sp, path, user_defined=()):
    """The vocabulary as GGUF, with the user_defined pieces (strings) added after sp's."""
    n = sp.get_piece_size()
    w = GGUFWriter(path, "llama")
    w.add_tokenizer_model("llama")
    w.add_token_list([sp.id_to_piece(i).encode("utf-8") for i in range(n)] + [u.encode() for u in user_defined])
    w.add_token_scores([sp.get_score(i) for i in range(n)] + [0.0] * len(user_defined))
    w.add_token_types([token_type(sp, i) for i in range(n)] + [TokenType.USER_DEFINED] * len(user_defined))
    w.add_bos_token_id(sp.bos_id())
    w.add_eos_token_id(sp.eos_id())
    w.add_unk_token_id(sp.unk_id())
    w.add_add_bos_token(True)
    w.add_add_space_prefix(True)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    sp = train()
    write_vocab(sp, os.path.join(out, "vocab.gguf"))
    texts = TEXTS + generated_texts(random.Random(20240611), 200 - len(TEXTS))
    n_bytes = 0
    with open(os.path.join(out, "cases.bin"), "wb") as f:
        f.write(b"BNSPMREF" + struct.pack("<I", len(texts)))
        for text in texts:
            ids = sp.encode(text)
            n_bytes += sum(sp.is_byte(i) for i in ids)
            dec = sp.decode(ids).encode("utf-8")
            full = [sp.bos_id()] + ids
            t = text.encode("utf-8")
            f.write(struct.pack("<I", len(t)) + t)
            f.write(struct.pack(f"<I{len(full)}i", len(full), *full))
            f.write(struct.pack("<I", len(dec)) + dec)
    print(f"sentencepiece {spm.__version__}: {sp.get_piece_size()} pieces, {len(texts)} cases "
          f"({n_bytes} byte-fallback tokens) in {out}")


if __name__ == "__main__":
    main()
