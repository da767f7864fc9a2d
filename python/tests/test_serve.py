"""bitnet_gpu.serve on a local Ray cluster, run as a user runs it: `serve run`
with python/ray-serve.yaml (edited for the test: tiny-a, 2 fixed replicas of
half a CPU each, each batching 2 answers at once with prompt lookup (lookup 4), a free port on 127.0.0.1).
Concurrent requests go through
Serve's HTTP proxy with the official openai client; every answer is checked
against the CLI's, and both replicas must have answered (X-Bitnet-Replica).

The cluster lives in its own temporary directory and process session, and is
taken down whatever happens. When Ray itself cannot start here (a sandbox
without the system calls it needs), the test skips and says why.
"""
import concurrent.futures
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import pytest

openai = pytest.importorskip("openai")
yaml = pytest.importorskip("yaml")
pytest.importorskip("ray.serve")

CONFIG = os.path.join(os.path.dirname(__file__), "..", "ray-serve.yaml")
MODEL = "tiny-a"
START_S = 300  # Ray and two replicas on a busy 2-core machine: usually 15-40 s


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session_pids(sid):
    """The live processes of session sid (all that `serve run` started, Ray's included)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":  # after "pid (comm)": state ppid pgrp session
                pids.append(int(entry))
    return pids


def stop(proc):
    """Ends `serve run` (Ray's processes share its fate), then anything left in its session."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            pass
    deadline = time.monotonic() + 20
    while session_pids(proc.pid) and time.monotonic() < deadline:
        for pid in session_pids(proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.5)
    if proc.poll() is None:
        proc.wait(10)


def die_with_parent():
    """In the child: SIGTERM when pytest dies (killed by CTest's timeout, say),
    so that `serve run` and its cluster do not outlive the test."""
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, json.loads(r.read())


@pytest.fixture(scope="module")
def server(model_path):
    tmp = tempfile.mkdtemp(prefix="bn-ray-")  # short: Ray's socket paths must fit in 107 bytes
    port = free_port()
    with open(CONFIG) as f:
        config = yaml.safe_load(f)
    config["http_options"] = {"host": "127.0.0.1", "port": port}
    app = config["applications"][0]
    app["args"] = {"model": model_path, "model_name": MODEL, "threads": 1, "slots": 2, "lookup": 4}
    deployment = app["deployments"][0]
    deployment["max_ongoing_requests"] = 2  # each replica batches two answers (BatchEngine)
    del deployment["autoscaling_config"]
    deployment["num_replicas"] = 2
    deployment["ray_actor_options"] = {"num_cpus": 0.5, "num_gpus": 0}
    with open(os.path.join(tmp, "serve.yaml"), "w") as f:
        yaml.safe_dump(config, f)
    env = dict(os.environ, RAY_TMPDIR=tmp, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")
    log_path = os.path.join(tmp, "serve.log")
    serve_cli = os.path.join(os.path.dirname(sys.executable), "serve")
    with open(log_path, "w") as log:
        proc = subprocess.Popen([serve_cli, "run", "serve.yaml"], cwd=tmp, env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=die_with_parent)

    def log_tail():
        with open(log_path, errors="replace") as f:
            return "".join(f.readlines()[-40:])

    try:
        deadline = time.monotonic() + START_S
        while True:
            try:
                if get(f"http://127.0.0.1:{port}/v1/models")[0] == 200:
                    break
            except (OSError, ValueError):
                pass
            if proc.poll() is not None:
                tail = log_tail()
                if "Started a local Ray instance" not in tail and "Started Serve" not in tail:
                    pytest.skip(f"Ray could not start a local cluster here:\n{tail}")
                pytest.fail(f"serve run exited with {proc.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                pytest.fail(f"the deployment did not answer within {START_S} s:\n{log_tail()}")
            time.sleep(1)
        yield f"http://127.0.0.1:{port}", log_tail
    finally:
        stop(proc)
        leftovers = session_pids(proc.pid)
        subprocess.run(["rm", "-rf", tmp], check=False)
        assert not leftovers, f"processes of the Ray cluster survived: {leftovers}"


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server[0] + "/v1", api_key="unused", max_retries=0, timeout=120)


def test_two_replicas_answer_like_the_cli(server, client, cli):
    system, user = "You are terse.", "Why is the sky blue?"
    want_chat = cli("--chat", "--system", system, "-p", user, "-n", 12, "--greedy")
    want_text = {p: cli("-p", p, "-n", 12, "--greedy") for p in ("2+2=", "The capital of France is")}
    want_sampled = cli("-p", "Hello", "-n", 12, "--temp", 0.7, "--top-p", 0.9, "-s", 11)
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def chat(stream):
        if not stream:
            raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=messages, max_tokens=12,
                                                                   temperature=0)
            r = raw.parse()
            text, usage = r.choices[0].message.content, r.usage
            assert r.choices[0].finish_reason == "length"
            return raw.headers["x-bitnet-replica"], text, usage, want_chat
        with client.chat.completions.with_streaming_response.create(
                model=MODEL, messages=messages, max_tokens=12, temperature=0, stream=True,
                stream_options={"include_usage": True}) as raw:
            chunks = list(raw.parse())
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            return raw.headers["x-bitnet-replica"], text, chunks[-1].usage, want_chat

    def completion(prompt, stream, want=None, **sampling):
        want = want or want_text[prompt]
        sampling = sampling or {"temperature": 0}
        if not stream:
            raw = client.completions.with_raw_response.create(model=MODEL, prompt=prompt, max_tokens=12, **sampling)
            r = raw.parse()
            return raw.headers["x-bitnet-replica"], r.choices[0].text, r.usage, want
        with client.completions.with_streaming_response.create(
                model=MODEL, prompt=prompt, max_tokens=12, stream=True, stream_options={"include_usage": True},
                **sampling) as raw:
            chunks = list(raw.parse())
            text = "".join(c.choices[0].text for c in chunks if c.choices)
            return raw.headers["x-bitnet-replica"], text, chunks[-1].usage, want

    requests = [
        lambda: chat(False),
        lambda: chat(True),
        lambda: completion("2+2=", False),
        lambda: completion("The capital of France is", True),
        lambda: completion("Hello", False, want_sampled, temperature=0.7, top_p=0.9, seed=11),
        lambda: completion("2+2=", True),
    ]
    replicas = set()
    with concurrent.futures.ThreadPoolExecutor(len(requests)) as pool:
        for _ in range(4):  # rounds of concurrent requests, until both replicas have answered
            for replica, text, usage, want in pool.map(lambda f: f(), requests):
                assert text == want["text"]
                assert (usage.prompt_tokens, usage.completion_tokens) == (len(want["prompt_ids"]), 12)
                replicas.add(replica)
            if len(replicas) == 2:
                break
    assert len(replicas) == 2, f"only {replicas} answered\n{server[1]()}"


def test_models_and_errors(server, client):
    assert [m.id for m in client.models.list().data] == [MODEL]
    with pytest.raises(openai.NotFoundError) as e:
        client.completions.create(model="gpt-4", prompt="x", max_tokens=2)
    assert e.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=MODEL, prompt="x", max_tokens=2, top_p=2)
    assert e.value.body["message"] == "top-p must be in (0, 1] (got 2)"  # the C library's words
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x " * 600}])
    assert e.value.body["code"] == "context_length_exceeded"
    with pytest.raises(urllib.error.HTTPError) as e:
        get(server[0] + "/v1/nothing")
    assert e.value.code == 404 and json.loads(e.value.read())["error"]["message"] == "Not Found"
    # The tokenizer endpoints lm-evaluation-harness's remote tokenizer reads (test_openai_api
    # holds them to `bitnet-gpu serve`'s answers).
    status, info = get(server[0] + "/tokenizer_info")
    assert status == 200 and info["bos_token"] == "<|begin_of_text|>"
    req = urllib.request.Request(server[0] + "/tokenize",
                                 data=json.dumps({"prompt": "Hi", "add_special_tokens": False}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert json.loads(r.read())["count"] == 1
