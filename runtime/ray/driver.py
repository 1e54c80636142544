"""metaexec's Ray driver: runs a sweep's shards as Ray tasks and prints their parts.

`metaexec` (src/sweep/ray.rs) submits this file as the entrypoint of a Ray job, through the
dashboard's job submission API, with the job's package as the working directory:

    python3 driver.py <base64 of the job's JSON spec>

The spec (version 1) is {"version", "shards", "cpus", "retries", "metaexec", "args", "env"}; it
travels on the command line rather than in the package so that the package (the binary and
the runtime cache, many megabytes) stays the same from one sweep to the next and is uploaded
once.

Each shard is one task asking for `cpus` CPUs. It runs the metaexec command in the working
directory with `--shard I/N --out <empty temp dir>` and returns the part folder as zip bytes.
Exit codes 0 and 1 give a part (1 means some scenarios failed, which the part records); any
other exit, a signal, an empty part folder or a lost task is a failed attempt, tried again up
to `retries` times.

The coordinator reads this job's log, so stdout is a line protocol; every other line (Ray's
own, anything else) is ignored by it:

    METAEXEC_WARNING <json string>
    METAEXEC_SHARD_DONE <index> <attempt>
    METAEXEC_SHARD_RETRY <index> <failed attempt> <json string: why>
    METAEXEC_SHARD_FAILED <index> <attempts> <json string: why, with the stderr tail>
    METAEXEC_PARTS_BEGIN <count>
    METAEXEC_PART <index> <seq> <base64 chunk>        (seq 0, 1, ...; at most 64 KiB a line)
    METAEXEC_PART_END <index> <sha256 hex of the zip>

Indexes are 0-based, attempts 1-based. Parts are printed only once every shard has finished,
so the log the coordinator polls for progress stays small while the shards run. The driver
exits 1 when a shard failed for good (its parts for the other shards are still printed).
"""

import base64
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import zipfile

PROTOCOL_VERSION = 1
# Lines of a shard's stderr kept in a failure message.
STDERR_TAIL_LINES = 20
# Base64 characters per METAEXEC_PART line (64 KiB).
CHUNK_CHARS = 64 * 1024

_print_lock = threading.Lock()


def emit(*fields):
    """Prints one protocol line in a single write, then flushes."""
    line = " ".join(str(f) for f in fields) + "\n"
    with _print_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


def import_ray():
    """Imports ray, or runs this driver again with the Python the cluster's workers use.

    The job runs its entrypoint with the PATH of the process that started the cluster. When
    that was `/path/to/venv/bin/ray start` without activating the venv, `python3` on PATH lacks
    ray. The raylet, an ancestor of this process, names the cluster's Python in its
    `--python_worker_command=` argument (Linux: read from /proc).
    """
    try:
        import ray

        return ray
    except ImportError:
        if os.environ.get("METAEXEC_RAY_REEXEC"):
            raise
        python = cluster_python()
        if python is None:
            raise
        os.environ["METAEXEC_RAY_REEXEC"] = "1"
        os.execv(python, [python] + sys.argv)


def cluster_python():
    """The raylet's `--python_worker_command`, found among this process's ancestors."""
    pid = os.getppid()
    for _ in range(16):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                args = f.read().decode("utf-8", "replace").split("\0")
            with open("/proc/%d/stat" % pid, "rb") as f:
                # The parent's pid follows the command name, which is in parentheses.
                parent = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return None
        for arg in args:
            if arg.startswith("--python_worker_command="):
                python = arg.split("=", 1)[1].split(" ")[0]
                return python if os.path.isfile(python) else None
        if parent <= 1:
            return None
        pid = parent
    return None


def shard_command(spec, workdir, index):
    """The shard's command line and environment, resolved on the worker that runs it."""
    if spec["metaexec"] is None:
        program = os.path.join(workdir, "metaexec")
        # Ray 2.60 restores the mode bits stored in the zip, older releases do not.
        mode = os.stat(program).st_mode
        if mode & 0o111 != 0o111:
            os.chmod(program, mode | 0o111)
    else:
        program = spec["metaexec"]
    env = dict(os.environ)
    for name, value, in_workdir in spec["env"]:
        env[name] = os.path.join(workdir, value) if in_workdir else value
    args = [program] + list(spec["args"]) + ["--shard", "%d/%d" % (index, spec["shards"])]
    return args, env


def _parent_death_signal():
    """A `preexec_fn` that makes the shard process die with its Ray worker (Linux), or None.

    A stopped job kills its workers; a metaexec left behind would go on using the node's
    CPUs. prctl is looked up here, before the fork: the child runs only the call.
    """
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    PR_SET_PDEATHSIG = 1
    return lambda: prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def tail(path, lines):
    """The last `lines` lines of a text file, at most 8 KiB of it."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 8192))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def zip_folder(folder):
    """The folder's regular files as zip bytes, paths relative to it (no symlinks)."""
    buffer = tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024)
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(root, name)
                if os.path.islink(path) or not os.path.isfile(path):
                    continue
                archive.write(path, os.path.relpath(path, folder))
    buffer.seek(0)
    return buffer.read()


def run_shard(spec, index, attempt):
    """One attempt at one shard: ({"ok", "message"}, part zip bytes or b"")."""
    workdir = os.getcwd()
    scratch = tempfile.mkdtemp(prefix="metaexec-shard-%d-" % index)
    try:
        out = os.path.join(scratch, "part")
        os.mkdir(out)
        stdout_path = os.path.join(scratch, "stdout")
        stderr_path = os.path.join(scratch, "stderr")
        program = spec["metaexec"] or "./metaexec"
        try:
            args, env = shard_command(spec, workdir, index)
            args += ["--out", out]
            with open(stdout_path, "wb") as stdout, open(stderr_path, "wb") as stderr:
                code = subprocess.call(
                    args,
                    cwd=workdir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=stdout,
                    stderr=stderr,
                    preexec_fn=_parent_death_signal(),
                )
        except OSError as e:
            return {"ok": False, "message": "could not start `%s`: %s" % (program, e)}, b""
        if code < 0:
            why = "killed by signal %d" % -code
        elif code not in (0, 1):
            why = "exited with code %d" % code
        elif not os.listdir(out):
            why = "exited with code %d but wrote nothing to --out" % code
        else:
            return {"ok": True, "message": ""}, zip_folder(out)
        stderr_tail = tail(stderr_path, STDERR_TAIL_LINES)
        if stderr_tail:
            why += "; the end of its stderr:\n" + stderr_tail
        return {"ok": False, "message": "on %s: %s" % (os.uname().nodename, why)}, b""
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main():
    spec = json.loads(base64.b64decode(sys.argv[1]))
    if spec.get("version") != PROTOCOL_VERSION:
        sys.exit("metaexec ray driver: spec version %r, expected %d" % (spec.get("version"), PROTOCOL_VERSION))
    ray = import_ray()
    # Connects to the cluster the job runs on (RAY_ADDRESS is set by the job supervisor).
    # Task output is not forwarded: stdout is the protocol, and the shards' output is
    # captured by the tasks.
    ray.init(log_to_driver=False)

    shards, cpus, retries = spec["shards"], float(spec["cpus"]), int(spec["retries"])
    largest = max((n.get("Resources", {}).get("CPU", 0) for n in ray.nodes() if n.get("Alive")), default=0)
    if largest < cpus:
        emit(
            "METAEXEC_WARNING",
            json.dumps(
                "each shard asks for %g CPUs but the largest node has %g: the shards wait "
                "until the cluster grows" % (cpus, largest)
            ),
        )

    # Ray's own task retries are off: a retry is ours to count, report and give up on.
    task = ray.remote(run_shard).options(num_cpus=cpus, num_returns=2, max_retries=0)
    spec_ref = ray.put(spec)
    running = {}
    for index in range(shards):
        status, part = task.remote(spec_ref, index, 1)
        running[status] = (index, 1, part)

    # Each part is fetched as soon as its shard is done and kept in a file on this node: an
    # object left on a worker's node would be lost with the node, and holding every part in
    # memory until the end would cost the sum of their sizes.
    with tempfile.TemporaryDirectory(prefix="metaexec-parts-") as kept:
        parts, failed = {}, []
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            for status_ref in ready:
                index, attempt, part_ref = running.pop(status_ref)
                try:
                    status = ray.get(status_ref)
                    if status["ok"]:
                        path = os.path.join(kept, "part-%d.zip" % index)
                        with open(path, "wb") as f:
                            f.write(ray.get(part_ref))
                        parts[index] = path
                except Exception as e:  # the worker died, the node was lost, ...
                    status = {"ok": False, "message": "the Ray task failed: %s" % str(e).strip()[-4000:]}
                if status["ok"]:
                    emit("METAEXEC_SHARD_DONE", index, attempt)
                elif attempt <= retries:
                    emit("METAEXEC_SHARD_RETRY", index, attempt, json.dumps(status["message"]))
                    status, part = task.remote(spec_ref, index, attempt + 1)
                    running[status] = (index, attempt + 1, part)
                else:
                    emit("METAEXEC_SHARD_FAILED", index, attempt, json.dumps(status["message"]))
                    failed.append(index)
                del part_ref

        emit("METAEXEC_PARTS_BEGIN", len(parts))
        for index in sorted(parts):
            print_part(index, parts[index])
    sys.exit(1 if failed else 0)


def print_part(index, path):
    """Prints the part's zip as base64 lines of CHUNK_CHARS, then its SHA-256."""
    digest = hashlib.sha256()
    # 3 bytes make 4 characters: every chunk but the last decodes on its own, unpadded.
    raw_chunk = CHUNK_CHARS // 4 * 3
    with open(path, "rb") as f:
        seq = 0
        while True:
            data = f.read(raw_chunk)
            if not data:
                break
            digest.update(data)
            emit("METAEXEC_PART", index, seq, base64.b64encode(data).decode("ascii"))
            seq += 1
    emit("METAEXEC_PART_END", index, digest.hexdigest())


if __name__ == "__main__":
    main()
