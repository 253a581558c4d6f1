"""What a device has, found before anything is copied to it. Runs ON the device as a script sent
over ssh (``python3 - ROOT``), before we know that edgecv is installed there: standard library
only, Python 3.6 syntax, no edgecv import at module level.

Prints one JSON object: Python version and path, host name and boot id, edgecv's version (or
why it does not import), the runtime packages' versions, edgecv's machine record and the reason
each device target is absent (when edgecv imports), the free space under ROOT and the SHA-256
names already in ROOT/files (the cache). It also removes what an earlier run left behind when its
process is gone (the device rebooted or the run was killed): ROOT/jobs/ID and ROOT/files/*.part.ID.
"""

import json
import os
import platform
import shutil
import sys

RUNTIME_PACKAGES = ("ai-edge-litert", "tflite-runtime", "onnxruntime", "onnxruntime-gpu",
                    "numpy", "opencv-python")


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


def job_is_stale(job, boot_id):
    """A job folder whose owner process is gone: another boot, or a pid that no longer runs."""
    try:
        with open(os.path.join(job, "owner.json")) as handle:
            owner = json.load(handle)
    except (OSError, ValueError):
        return True
    if owner.get("boot_id") != boot_id:
        return True
    pid = owner.get("pid")
    return not isinstance(pid, int) or not process_alive(pid)


def remove_stale_jobs(root, boot_id):
    removed = []
    jobs = os.path.join(root, "jobs")
    files = os.path.join(root, "files")
    for name in sorted(os.listdir(jobs)) if os.path.isdir(jobs) else []:
        job = os.path.join(jobs, name)
        if job_is_stale(job, boot_id):
            shutil.rmtree(job, ignore_errors=True)
            for leftover in os.listdir(files) if os.path.isdir(files) else []:
                if leftover.endswith(".part." + name):
                    os.remove(os.path.join(files, leftover))
            removed.append(name)
    return removed


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
    boot_id = read_text("/proc/sys/kernel/random/boot_id")
    facts = {"python": platform.python_version(), "python_path": sys.executable,
             "hostname": platform.node(), "boot_id": boot_id, "root": root,
             "packages": package_versions()}
    facts.update(edgecv_facts())
    try:
        os.makedirs(os.path.join(root, "files"), exist_ok=True)
        os.makedirs(os.path.join(root, "jobs"), exist_ok=True)
        facts["stale_removed"] = remove_stale_jobs(root, boot_id)
        facts["free_bytes"] = shutil.disk_usage(root).free
        facts["cached"] = sorted(name for name in os.listdir(os.path.join(root, "files"))
                                 if len(name) == 64 and "." not in name)
    except OSError as exc:
        facts["root_error"] = "%s: %s" % (type(exc).__name__, exc)
    print(json.dumps(facts))


if __name__ == "__main__":
    main(sys.argv[1:])
