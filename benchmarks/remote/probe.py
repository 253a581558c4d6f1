"""What a device has, found before anything is copied to it. Runs ON the device as a script sent
over ssh (``python3 - ROOT``), before we know that edgecv is installed there: standard library
only, Python 3.6 syntax, no edgecv import at module level.

Run as ``python3 - ROOT [CACHE_DAYS CACHE_MB]``. Prints one JSON object: Python version and
path, host name and boot id, edgecv's version (or why it does not import), the runtime packages'
versions, edgecv's machine record and the reason each device target is absent (when edgecv
imports), the free space under ROOT and the SHA-256 names already in ROOT/files (the cache). It
also removes what an earlier run left behind when its process is gone (the device rebooted or the
run was killed): ROOT/jobs/ID and ROOT/files/*.part.ID; and evicts cached files
(:func:`evict_cache`).

The cache is private: ROOT/files and ROOT/jobs (and ROOT when edgecv creates it) are 0700, the
files in them 0600, whatever the umask (:func:`private_dir`; the agent writes the files).
"""

import json
import os
import re
import platform
import shutil
import stat
import sys
import time

DEFAULT_CACHE_DAYS = 30
DEFAULT_CACHE_MB = 1000
# a file used this recently may belong to a run between its check and its bench: never evicted
RECENT_S = 3600

RUNTIME_PACKAGES = ("ai-edge-litert", "tflite-runtime", "onnxruntime", "onnxruntime-gpu",
                    "numpy", "opencv-python", "opencv-python-headless")


def read_text(path):
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return None


def process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# What edgecv names a job (fleet: uuid4().hex[:16]) and puts in its folder (agent.Job). A folder
# of ROOT/jobs that is not named so, or that holds anything else without an owner.json, was not
# made by edgecv (a ?dir= may name a folder that has a jobs/ of its own) and is never removed.
JOB_NAME = re.compile(r"[0-9a-f]{16}")
JOB_ENTRIES = {"owner.json", "run"}


def job_is_stale(job, boot_id):
    """A job folder edgecv made whose owner process is gone: another boot, or a pid that no
    longer runs. A job killed before it wrote owner.json counts when it holds only edgecv's
    entries."""
    if not JOB_NAME.fullmatch(os.path.basename(job)):
        return False
    try:
        with open(os.path.join(job, "owner.json")) as handle:
            owner = json.load(handle)
    except (OSError, ValueError):
        try:
            return set(os.listdir(job)) <= JOB_ENTRIES
        except OSError:
            return False
    if not isinstance(owner, dict) or owner.get("boot_id") != boot_id:
        return True
    pid = owner.get("pid")
    return not isinstance(pid, int) or not process_alive(pid)


def remove_stale_jobs(root, boot_id):
    removed = []
    jobs = os.path.join(root, "jobs")
    files = os.path.join(root, "files")
    for name in sorted(os.listdir(jobs)) if os.path.isdir(jobs) else []:
        job = os.path.join(jobs, name)
        if os.path.isdir(job) and not os.path.islink(job) and job_is_stale(job, boot_id):
            shutil.rmtree(job, ignore_errors=True)
            for leftover in os.listdir(files) if os.path.isdir(files) else []:
                if leftover.endswith(".part." + name):
                    os.remove(os.path.join(files, leftover))
            removed.append(name)
    return removed


def private_dir(path):
    """Create ``path`` (and its parents) if missing, and make it 0700 whatever the umask."""
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o700)


def evict_cache(root, max_days=DEFAULT_CACHE_DAYS, max_mb=DEFAULT_CACHE_MB, now=None):
    """Remove the files of ROOT/files unused (last copied or benched: their mtime) for more
    than ``max_days`` days, then the least recently used until the cache holds at most
    ``max_mb`` MB (10^6 bytes). Never a file a running job has linked into its folder, nor one
    used within the last hour; only SHA-256-named files (what edgecv stores). Files an older
    edgecv left readable to others are made 0600. Returns (names removed, bytes freed)."""
    files = os.path.join(root, "files")
    now = time.time() if now is None else now
    entries = []
    for name in os.listdir(files):
        if len(name) != 64 or name.strip("0123456789abcdef"):
            continue
        path = os.path.join(files, name)
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode):
            continue
        if info.st_mode & 0o077:
            os.chmod(path, 0o600)
        entries.append((info.st_mtime, info.st_size, info.st_nlink, name))
    entries.sort()  # least recently used first
    total = sum(size for _, size, _, _ in entries)
    removed, freed = [], 0
    for used, size, links, name in entries:
        too_old = now - used > max_days * 86400
        if not too_old and total <= max_mb * 1e6:
            break  # the rest are newer, and the cache is small enough
        if links > 1 or now - used < RECENT_S:
            continue  # a job's file (hard-linked into ROOT/jobs/ID/run), or in use by a run
        try:
            os.remove(os.path.join(files, name))
        except FileNotFoundError:  # another run evicted it first
            pass
        total -= size
        freed += size
        removed.append(name)
    return removed, freed


def package_versions():
    try:
        from importlib import metadata
    except ImportError:  # Python < 3.8: the check above reports the version anyway
        return {}
    found = {}
    for name in RUNTIME_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except Exception:
            continue
    return found


def absent(probe, target, runtimes):
    """None when one of ``runtimes`` runs on ``target`` here, else every reason."""
    reasons = [probe(target, runtime) for runtime in runtimes]
    return None if None in reasons else "; ".join(reasons)


def edgecv_facts():
    """edgecv's version, machine record and target reasons; or why it does not import."""
    try:
        import edgecv
    except Exception as exc:
        return {"edgecv": None, "edgecv_error": "%s: %s" % (type(exc).__name__, exc)}
    facts = {"edgecv": getattr(edgecv, "__version__", None),
             "edgecv_path": os.path.dirname(os.path.abspath(edgecv.__file__))}
    try:
        from edgecv.benchmarks.machine import machine_info
        from edgecv.runtime.targets import probe

        facts["machine"] = machine_info()
        # the runtimes a device target needs (a Cloud TPU runs the Keras model: not benched here)
        facts["targets"] = {target: absent(probe, target, runtimes)
                            for target, runtimes in (("cpu", ("litert", "onnxruntime")),
                                                     ("gpu", ("onnxruntime", "litert")),
                                                     ("edgetpu", ("litert",)))}
    except Exception as exc:  # an edgecv of another version: the version check says so
        facts["facts_error"] = "%s: %s" % (type(exc).__name__, exc)
    return facts


def main(argv):
    root = os.path.abspath(os.path.expanduser(argv[0] if argv else "~/.cache/edgecv/remote"))
    max_days = float(argv[1]) if len(argv) > 1 else DEFAULT_CACHE_DAYS
    max_mb = float(argv[2]) if len(argv) > 2 else DEFAULT_CACHE_MB
    boot_id = read_text("/proc/sys/kernel/random/boot_id")
    facts = {"python": platform.python_version(), "python_path": sys.executable,
             "hostname": platform.node(), "boot_id": boot_id, "root": root,
             "packages": package_versions()}
    facts.update(edgecv_facts())
    try:
        if not os.path.isdir(root):  # a folder the user named keeps its mode; edgecv's is private
            private_dir(root)
        private_dir(os.path.join(root, "files"))
        private_dir(os.path.join(root, "jobs"))
        facts["stale_removed"] = remove_stale_jobs(root, boot_id)
        facts["evicted"], facts["evicted_bytes"] = evict_cache(root, max_days, max_mb)
        facts["free_bytes"] = shutil.disk_usage(root).free
        facts["cached"] = sorted(name for name in os.listdir(os.path.join(root, "files"))
                                 if len(name) == 64 and "." not in name)
    except OSError as exc:
        facts["root_error"] = "%s: %s" % (type(exc).__name__, exc)
    print(json.dumps(facts))


if __name__ == "__main__":
    main(sys.argv[1:])
