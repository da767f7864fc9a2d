#!/usr/bin/env python3
"""test_download.py - `bitnet-gpu download` against a local fake hub (fake_hub.py).

Nothing here touches the internet: HF_ENDPOINT points at 127.0.0.1. Covers a
full download, the defaults, resume after a dropped connection and across runs,
a server that ignores Range, a wrong checksum, 404s, a gated repository and
HF_TOKEN, the tree API fallback, no published checksum, the server gone, a disk
that refuses the write (RLIMIT_FSIZE), an existing file, progress only on a
terminal, and bad arguments. Run by CTest with BITNET_CLI set.
"""
import json
import os
import pty
import random
import resource
import signal
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_hub import FakeHub, unused_port  # noqa: E402

CLI = os.path.abspath(os.environ.get("BITNET_CLI", "build/bitnet-gpu"))
REPO, FILE = "owner/tiny-gguf", "model.gguf"
DATA = random.Random(7).randbytes(3 << 20)  # 3 MiB


class DownloadTest(unittest.TestCase):
    def setUp(self):
        self.hub = FakeHub()
        self.hub.add(REPO, FILE, DATA)
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = os.path.join(self.tmp.name, "models")
        self.dest = os.path.join(self.dir, FILE)

    def tearDown(self):
        self.hub.close()
        self.tmp.cleanup()

    def run_cli(self, *args, endpoint=None, token=None, preexec=None, stderr=subprocess.PIPE, cwd=None):
        env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HF_ENDPOINT")}
        env["HF_ENDPOINT"] = endpoint or self.hub.url
        if token:
            env["HF_TOKEN"] = token
        return subprocess.run([CLI, "download", *args], env=env, stdout=subprocess.PIPE, stderr=stderr,
                              preexec_fn=preexec, cwd=cwd or self.tmp.name, timeout=120, text=True)

    def download(self, *extra, **kw):
        return self.run_cli(REPO, FILE, "-o", self.dir, *extra, **kw)

    def assert_ok(self, r):
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(self.dest, "rb") as f:
            self.assertEqual(f.read(), DATA)
        self.assertFalse(os.path.exists(self.dest + ".part"))

    def assert_failed(self, r, needle):
        self.assertEqual(r.returncode, 1, r.stderr)
        errors = [l for l in r.stderr.splitlines() if l.startswith("error:")]
        self.assertEqual(len(errors), 1, r.stderr)
        self.assertIn(needle, errors[0])
        self.assertFalse(os.path.exists(self.dest), "a failed download left the final file")

    def cdn_ranges(self):
        return [h.get("Range") for (m, p, h) in self.hub.requests("/cdn/") if m == "GET"]

    def test_full_download(self):
        r = self.download("--json")
        self.assert_ok(r)
        j = json.loads(r.stdout)  # stdout is one JSON document
        self.assertEqual(j["path"], self.dest)
        self.assertEqual(j["bytes"], len(DATA))
        self.assertTrue(j["verified"] and j["downloaded"])
        self.assertEqual(j["resumed_from"], 0)
        self.assertEqual(r.stderr, "")  # quiet: --json, and stderr is not a terminal
        self.assertEqual(self.cdn_ranges(), [None])
        self.assertNotIn("Authorization", self.hub.log[0][2])  # no HF_TOKEN, none sent

    def test_defaults(self):
        self.hub.add("microsoft/bitnet-b1.58-2B-4T-gguf", "ggml-model-i2_s.gguf", DATA)
        r = self.run_cli()
        self.assertEqual(r.returncode, 0, r.stderr)
        path = os.path.join(self.tmp.name, "models", "ggml-model-i2_s.gguf")
        self.assertEqual(r.stdout.strip(), "models/ggml-model-i2_s.gguf")
        self.assertIn("from this directory, bitnet-gpu's commands take it without -m", r.stderr)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), DATA)

    def test_resume_after_a_cut(self):
        self.hub.cut_after, self.hub.cuts_left = 1 << 20, 2  # two drops, 1 MiB each
        r = self.download()
        self.assert_ok(r)
        self.assertEqual(self.cdn_ranges(), [None, "bytes=1048576-", "bytes=2097152-"])
        self.assertEqual(r.stderr.count("note:"), 2, r.stderr)
        self.assertIn("resuming at 1.05 MB", r.stderr)

    def test_resume_across_runs(self):
        os.makedirs(self.dir)
        with open(self.dest + ".part", "wb") as f:
            f.write(DATA[:1234567])
        r = self.download("--json")
        self.assert_ok(r)
        self.assertEqual(json.loads(r.stdout)["resumed_from"], 1234567)
        self.assertEqual(self.cdn_ranges(), ["bytes=1234567-"])

    def test_server_ignores_range(self):
        os.makedirs(self.dir)
        with open(self.dest + ".part", "wb") as f:
            f.write(b"stale bytes of something else")
        self.hub.ignore_range = True
        self.assert_ok(self.download())

    def test_stale_part_of_another_file_is_deleted(self):
        os.makedirs(self.dir)
        with open(self.dest + ".part", "wb") as f:
            f.write(b"x" * 1000)  # resumed, but these are not the file's first bytes
        self.assert_failed(self.download(), "SHA-256 mismatch")
        self.assertFalse(os.path.exists(self.dest + ".part"))
        self.assert_ok(self.download())  # and the next run starts clean

    def test_wrong_checksum(self):
        self.hub.wrong_sha = True
        self.assert_failed(self.download(), "SHA-256 mismatch")
        self.assertFalse(os.path.exists(self.dest + ".part"))

    def test_not_found(self):
        r = self.run_cli(REPO, "missing.gguf", "-o", self.dir)
        self.assert_failed(r, "has no file missing.gguf")
        self.assertFalse(os.path.exists(os.path.join(self.dir, "missing.gguf.part")))
        self.assert_failed(self.run_cli("owner/nothing", FILE, "-o", self.dir), "has no repository owner/nothing")
        self.assert_failed(self.download("--revision", "v9"), "has no revision 'v9'")

    def test_revision(self):
        self.hub.revisions.add("refs%2Fpr%2F1")  # a revision is one URL segment
        self.assert_ok(self.download("--revision", "refs/pr/1"))
        self.assertTrue(self.hub.requests(f"/{REPO}/resolve/refs%2Fpr%2F1/{FILE}"))

    def test_gated_repository_and_token(self):
        self.hub.token = "hf_secret"
        self.hub.cdn_host = "localhost"  # another host: the token must not follow the redirect
        self.assert_failed(self.download(), "set HF_TOKEN")
        self.assert_failed(self.download(token="hf_wrong"), "the HF_TOKEN given cannot read it")
        self.hub.log.clear()
        self.assert_ok(self.download(token="hf_secret"))
        resolve = [h for (m, p, h) in self.hub.log if "/resolve/" in p]
        self.assertTrue(resolve and all(h.get("Authorization") == "Bearer hf_secret" for h in resolve))
        self.assertTrue(all("Authorization" not in h for (m, p, h) in self.hub.requests("/cdn/")))

    def test_checksum_from_the_tree_api(self):
        self.hub.linked_etag = False
        r = self.download("--json")
        self.assert_ok(r)
        self.assertTrue(json.loads(r.stdout)["verified"])
        self.assertTrue(self.hub.requests(f"/api/models/{REPO}/tree/main"))

    def test_no_published_checksum(self):
        self.hub.lfs = False
        r = self.download("--json")
        self.assert_ok(r)
        self.assertFalse(json.loads(r.stdout)["verified"])
        self.assertIn("warning: ", r.stderr)
        self.assertIn("will not be verified", r.stderr)

    def test_server_gone(self):
        r = self.download(endpoint=f"http://127.0.0.1:{unused_port()}")
        self.assert_failed(r, "cannot reach")
        self.assertFalse(os.path.exists(self.dir))

    def test_disk_full(self):
        # A file size limit makes write() fail (EFBIG) as a full disk does
        # (ENOSPC); the signal it would raise is ignored, as the kernel allows.
        def limit():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

        r = self.download(preexec=limit)
        self.assert_failed(r, "writing " + self.dest + ".part")
        self.assertIn("run the same command again to resume", r.stderr)
        self.assertEqual(os.path.getsize(self.dest + ".part"), 1 << 20)  # what fitted is kept
        self.assert_ok(self.download())  # space again: it resumes
        self.assertEqual(self.cdn_ranges()[-1], "bytes=1048576-")

    def test_existing_file(self):
        self.assert_ok(self.download())
        self.hub.log.clear()
        r = self.download("--json")
        self.assert_ok(r)
        self.assertFalse(json.loads(r.stdout)["downloaded"])
        self.assertEqual(self.cdn_ranges(), [])
        with open(self.dest, "r+b") as f:
            f.write(b"corrupt")
        r = self.download()
        self.assertEqual(r.returncode, 1)
        self.assertIn("is not the hub's file", r.stderr)

    def test_progress_only_on_a_terminal(self):
        for extra, want in (((), True), (("--json",), False)):
            master, slave = pty.openpty()
            r = self.download(*extra, stderr=slave)
            os.close(slave)
            out = b""
            try:
                while chunk := os.read(master, 65536):
                    out += chunk
            except OSError:  # EIO: the terminal's other end is closed
                pass
            os.close(master)
            self.assertEqual(r.returncode, 0)
            text = out.decode(errors="replace")
            self.assertEqual("MB/s" in text, want, text)
            self.assertEqual("3.15 MB / 3.15 MB" in text, want, text)
            os.remove(self.dest)

    def test_flags_anywhere(self):
        # getopt_long: flags before, between and after REPO and FILE; --flag=VALUE
        r = self.run_cli("--json", REPO, "--output-dir=" + self.dir, "--revision", "main", FILE)
        self.assert_ok(r)
        self.assertEqual(json.loads(r.stdout)["path"], self.dest)

    def test_bad_arguments(self):
        for args in (["a", "b", "c"], ["no-slash"], [REPO, "../etc/passwd"], [REPO, "/abs"],
                     ["--frobnicate"], ["-o"]):
            r = self.run_cli(*args)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            self.assertEqual(r.stderr.count("error:"), 1, r.stderr)
        self.assertEqual(self.hub.log, [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
