#!/usr/bin/env python3
"""test_chat.py - `bitnet-gpu chat` as a person uses it, through a pseudo-terminal.

Line editing and history (libedit), /help, /reset, /exit, Ctrl-C stopping a
reply without ending the program (and dropping a half-typed line at the prompt),
multi-line messages (a trailing backslash, a \"\"\" block), a conversation that
outgrows the context going on without its oldest exchanges, and a clean newline
after Ctrl-D; also chat fed from a pipe.
The model is a synthetic one made here (the chat's behaviour, not its text, is
under test), with the Llama-3 vocabulary's size so that a reply is slow enough
to interrupt. Run by CTest with BITNET_CLI set.
"""
import os
import pty
import re
import select
import subprocess
import tempfile
import termios
import time
import unittest

CLI = os.path.abspath(os.environ.get("BITNET_CLI", "build/bitnet-gpu"))
PROMPT = b"\r\n> "  # the prompt, on a line of its own


class Chat:
    """bitnet-gpu chat on a pseudo-terminal: what it wrote, and keys to send."""

    def __init__(self, model, *args):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the terminal is its stdin, stdout and stderr
            os.environ["TERM"] = "xterm"
            os.execv(CLI, [CLI, "chat", "-m", model, "--greedy", "-t", "1", *args])
        self.out = b""
        self.expect(b"> ")

    def read(self, timeout):
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return False
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:  # EIO: the program exited
            chunk = b""
        self.out += chunk
        return bool(chunk)

    def expect(self, pattern, timeout=60):
        """Reads until pattern (bytes, a regex) appears after what was matched last."""
        start, deadline = getattr(self, "mark", 0), time.time() + timeout
        while True:
            m = re.compile(pattern).search(self.out, start)
            if m:
                self.mark = m.end()
                return m
            if time.time() > deadline or not self.read(deadline - time.time()):
                raise AssertionError(f"{pattern!r} not seen; the chat wrote:\n"
                                     f"{self.out[start - 300:start].decode(errors='replace')}\n--- since:\n"
                                     f"{self.out[start:].decode(errors='replace')}")

    def line_editing(self):
        """libedit reads keys one by one (ICANON off) only while it waits for a line."""
        return not termios.tcgetattr(self.fd)[3] & termios.ICANON

    def wait_for(self, editing, timeout=30):
        deadline = time.time() + timeout
        while self.line_editing() != editing:
            if time.time() > deadline:
                raise AssertionError(f"the terminal never {'entered' if editing else 'left'} line editing")
            self.read(0.01)

    def type(self, keys):
        """Keys typed at the prompt: sent once the line editor is reading, as a
        person would (keys typed earlier reach the terminal's own line buffer)."""
        self.wait_for(editing=True)
        os.write(self.fd, keys)

    def send(self, keys):
        os.write(self.fd, keys)

    def say(self, keys):
        """Types keys (ending the message), waits for the reply and the next prompt."""
        self.type(keys)
        self.expect(rb"timings: ")
        self.expect(PROMPT)

    def wait(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                while self.read(0.1):
                    pass
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            self.read(0.1)
        os.kill(self.pid, 9)
        raise AssertionError("the chat did not exit")


class ChatTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.model = os.path.join(cls.tmp.name, "chat.gguf")
        subprocess.run([CLI, "make-model", "-o", cls.model, "--preset", "tiny", "--vocab-size", "128256",
                        "--ctx", "2048", "--seed", "3"], check=True, capture_output=True)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_help_and_exit(self):
        c = Chat(self.model, "-n", "4")
        c.type(b"/help\r")
        c.expect(rb"/reset +forget the conversation")
        c.expect(rb"/exit +quit")
        c.expect(PROMPT)
        c.type(b"/nonsense\r")
        c.expect(rb"unknown command /nonsense \(/help lists them\)")
        c.type(b"/exit\r")
        self.assertEqual(c.wait(), 0)

    def test_ctrl_c_stops_the_reply_not_the_program(self):
        c = Chat(self.model)  # no -n: the reply runs until the context is full
        c.type(b"tell me a long story\r")
        c.wait_for(editing=False)  # the line is in: the reply is being written
        c.expect(rb"tell me a long story\r\n.")
        c.send(b"\x03")
        c.expect(rb"\(stopped\)")
        c.expect(rb"timings: .*generated (\d+) tokens")
        c.expect(PROMPT, timeout=10)
        c.type(b"/help\r")  # still there, and listening
        c.expect(rb"/reset")
        c.expect(PROMPT)
        c.type(b"\x04")
        self.assertEqual(c.wait(), 0)
        self.assertTrue(c.out.endswith(b"\r\n"), c.out[-40:])  # a clean newline after Ctrl-D

    def test_ctrl_c_at_the_prompt_drops_the_line(self):
        c = Chat(self.model, "-n", "2")
        c.type(b"half a thought")
        time.sleep(0.3)
        c.send(b"\x03")
        c.expect(rb"\^C \(Ctrl-D or /exit quits\)")
        c.expect(b"> ")
        c.type(b"/exit\r")
        self.assertEqual(c.wait(), 0)
        self.assertNotIn(b"timings:", c.out)  # the dropped line was never sent

    def test_multi_line_messages(self):
        c = Chat(self.model, "-n", "2")
        c.type(b"first line \\\r")
        c.expect(rb"\r\n\.\.\. ")  # the continuation prompt, no reply yet
        self.assertNotIn(b"timings:", c.out)
        c.say(b"second line\r")
        c.type(b'"""\r')
        c.expect(rb"\.\.\. ")
        for line in (b"a pasted paragraph\r", b"\r", b"and another\r"):
            c.type(line)
        self.assertNotIn(b"timings", c.out[c.mark:])
        c.say(b'"""\r')
        self.assertEqual(c.out.count(b"timings:"), 2)  # one reply per message
        c.type(b"\x04")
        self.assertEqual(c.wait(), 0)

    def test_history(self):
        c = Chat(self.model, "-n", "2")
        c.say(b"remember this line\r")
        c.type(b"\x1b[A")  # the up arrow brings it back
        c.expect(rb"remember this line")
        c.say(b"\r")
        c.type(b"/exit\r")
        self.assertEqual(c.wait(), 0)

    def test_context_full_drops_the_oldest(self):
        c = Chat(self.model, "-c", "40")
        c.type(b"hello there\r")
        c.expect(rb"the context \(40 tokens\) is full")
        c.expect(rb"note: the next message goes on without the oldest exchanges")
        c.expect(PROMPT)
        c.type(b"and now?\r")  # the first exchange goes; the reply comes
        c.expect(rb"the conversation outgrew the context \(40 tokens\): it goes on without its oldest 1 exchange")
        c.expect(rb"timings: .*generated [1-9]")
        c.expect(PROMPT)
        c.type(b"a message much too long for a context of forty tokens, even on its own\r")
        c.expect(rb"note: this message \(\d+ tokens\) does not fit in the context \(40 tokens\) even alone")
        c.expect(PROMPT)
        c.type(b"/reset\r")
        c.expect(rb"\(conversation reset\)")
        c.say(b"\x1b[A\x1b[A\x1b[A\r")  # recall "and now?" (past /reset and the long one) and send it
        c.type(b"/exit\r")
        self.assertEqual(c.wait(), 0)

    def test_what_goes_on_is_the_shorter_conversation(self):
        # Once the first exchange is dropped, the second reply is the one a conversation
        # of the system prompt and that message alone gets: `generate --chat` gives it.
        r = subprocess.run([CLI, "chat", "-m", self.model, "--greedy", "-t", "1", "-c", "48", "--system", "Be terse."],
                           input="hello there\nand now?\n", capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("it goes on without its oldest 1 exchange", r.stderr)
        replies = r.stdout.split("\n")
        want = subprocess.run([CLI, "generate", "-m", self.model, "--greedy", "-t", "1", "-c", "48", "--chat",
                               "--system", "Be terse.", "-p", "and now?"], capture_output=True, text=True, timeout=120)
        self.assertEqual(want.returncode, 0, want.stderr)
        self.assertEqual(replies[1], want.stdout.removesuffix("\n"))  # generate ends its text with a newline

    def test_from_a_pipe(self):
        # No terminal: one message per line, no prompts, the commands still work.
        r = subprocess.run([CLI, "chat", "-m", self.model, "--greedy", "-n", "3"], input="hi\n/reset\nhello\n",
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr.count("timings:"), 2, r.stderr)
        self.assertIn("(conversation reset)", r.stderr)
        self.assertNotIn("> ", r.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
