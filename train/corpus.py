"""corpus.py - Jane Austen's six novels, from Debian's r-cran-janeaustenr package.

The package (MIT; the novels themselves are in the public domain) ships the texts
as an R lazy-load database: data/Rdata.rdx (a gzip'd serialized index of
name -> (offset, length)) and data/Rdata.rdb (zlib blobs, each a serialized
character vector, one element per line of the novel). R is not needed: the few
serialization types these files use are read here.

Split (fixed, so every run sees the same data): each novel is cut into
paragraphs; every 20th paragraph (index % 20 == 7) is validation, the rest is
training. Both splits keep whole paragraphs joined by blank lines.
"""
import glob
import gzip
import os
import struct
import subprocess
import tempfile
import zlib

PKG = "r-cran-janeaustenr"
DATA_DIR = "usr/lib/R/site-library/janeaustenr/data"
BOOKS = ["sensesensibility", "prideprejudice", "mansfieldpark", "emma",
         "northangerabbey", "persuasion"]


class _Reader:
    """R's XDR serialization format, version 2 or 3, for the types used here."""

    def __init__(self, data):
        if data[:2] != b"X\n":
            raise ValueError("not an XDR R serialization")
        self.d, self.p, self.refs = data, 2, []
        version = self.int()
        self.int(), self.int()  # R version that wrote it, minimal reader version
        if version == 3:
            n = self.int()  # then the native encoding's name
            self.p += n

    def int(self):
        (v,) = struct.unpack_from(">i", self.d, self.p)
        self.p += 4
        return v

    def item(self):
        flags = self.int()
        kind, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if kind == 254:  # NILVALUE_SXP
            return None
        if kind == 255:  # REFSXP: index in the high bits
            return self.refs[(flags >> 8) - 1]
        if kind == 1:  # SYMSXP
            name = self.item()
            self.refs.append(name)
            return name
        if kind == 9:  # CHARSXP
            n = self.int()
            if n == -1:
                return None
            s = self.d[self.p:self.p + n].decode("utf-8")
            self.p += n
            return s
        if kind == 2:  # LISTSXP (pairlist: attributes)
            out = {}
            while kind == 2:
                if has_attr:
                    self.item()
                tag = self.item() if has_tag else None
                out[tag] = self.item()
                flags = self.int()
                kind, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
            assert kind == 254, kind
            return out
        if kind in (10, 13, 16, 19):  # LGLSXP, INTSXP, STRSXP, VECSXP
            n = self.int()
            if kind in (10, 13):
                v = list(struct.unpack_from(">%di" % n, self.d, self.p))
                self.p += 4 * n
            else:
                v = [self.item() for _ in range(n)]
            attrs = self.item() if has_attr else {}
            names = attrs.get("names") if attrs else None
            return dict(zip(names, v)) if kind == 19 and names else v
        raise ValueError("unsupported R type %d" % kind)


def _read_rdb(data_dir):
    """{book name: list of lines} from the package's lazy-load database."""
    with gzip.open(os.path.join(data_dir, "Rdata.rdx")) as f:
        index = _Reader(f.read()).item()  # list(variables=, references=, compressed=)
    with open(os.path.join(data_dir, "Rdata.rdb"), "rb") as f:
        blob = f.read()
    books = {}
    for name in BOOKS:
        off, length = index["variables"][name]
        chunk = blob[off:off + length]
        (n,) = struct.unpack_from(">i", chunk, 0)  # uncompressed size, then zlib
        data = zlib.decompress(chunk[4:])
        if len(data) != n:
            raise ValueError("%s: corrupt entry %s" % (data_dir, name))
        books[name] = _Reader(data).item()
    return books


def package_dir(cache):
    """The unpacked package: installed in /usr, or fetched with apt-get download."""
    if os.path.isdir("/" + DATA_DIR):
        return "/"
    root = os.path.join(cache, "janeaustenr")
    if not os.path.isdir(os.path.join(root, DATA_DIR)):
        os.makedirs(cache, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["apt-get", "download", PKG], cwd=tmp, check=True)
            deb = glob.glob(os.path.join(tmp, PKG + "_*.deb"))[0]
            subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
    return root


def paragraphs(lines):
    """Lines -> paragraphs (runs of non-blank lines), whitespace collapsed."""
    out, cur = [], []
    for line in lines + [""]:
        line = (line or "").strip()
        if line:
            cur.append(line)
        elif cur:
            # one space between words; no _underscores_ (the e-texts' italics)
            out.append(" ".join(" ".join(cur).replace("_", "").split()))
            cur = []
    return out


def load(cache):
    """(train_text, valid_text) for the fixed split described above."""
    books = _read_rdb(os.path.join(package_dir(cache), DATA_DIR))
    train, valid = [], []
    for name in BOOKS:
        for i, p in enumerate(paragraphs(books[name])):
            (valid if i % 20 == 7 else train).append(p)
    return "\n\n".join(train) + "\n", "\n\n".join(valid) + "\n"


if __name__ == "__main__":
    tr, va = load(os.path.join(os.path.dirname(os.path.abspath(__file__)), "out"))
    print("train %d bytes, valid %d bytes" % (len(tr.encode()), len(va.encode())))
    print(tr[:500])
