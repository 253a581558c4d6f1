"""The files Keras writes during training (history.csv, the best checkpoint, the --resume
backup) are written atomically: a write that fails halfway leaves the previous complete file."""

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = [pytest.mark.tf, pytest.mark.slow]
UMASK = 0o027

CHILD = textwrap.dedent("""
    import json, os, resource, signal, stat, sys
    from pathlib import Path
    import numpy as np
    from edgecv.tf_import import import_tensorflow
    import_tensorflow()
    import keras
    from edgecv.training.callbacks import (AtomicBackupAndRestore, AtomicCSVLogger,
                                           BestWeightsCheckpoint)
    from edgecv.training.report import read_history

    folder, kind = Path(sys.argv[1]), sys.argv[2]
    os.umask(int(sys.argv[3], 8))
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(
        keras.layers.Dense(64)(inputs)))
    model.compile("adam", "sparse_categorical_crossentropy")
    path = {"csv": folder / "history.csv", "best": folder / "best.weights.h5",
            "backup": folder / "backup" / "latest.weights.h5"}[kind]

    def callback(resuming):
        if kind == "csv":
            return AtomicCSVLogger(str(path), append=resuming)
        if kind == "best":
            return BestWeightsCheckpoint(path)
        return AtomicBackupAndRestore(path.parent, delete_checkpoint=False)

    model.fit(x, y, validation_data=(x, y), epochs=2, verbose=0, callbacks=[callback(False)])
    old = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    mode = stat.S_IMODE(path.stat().st_mode)
    # The next epoch's write runs out of space halfway, as on a full disk: the file size limit
    # (SIGXFSZ ignored) makes write() fail with EFBIG once `limit` bytes are in the file.
    limit = len(old[path]) + 10 if kind == "csv" else len(old[path]) // 2
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        model.fit(x, y, validation_data=(x, y), epochs=3, initial_epoch=2, verbose=0,
                  callbacks=[callback(True)])
        error = None
    except OSError as exc:
        error = exc.errno
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    now = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    print(json.dumps({"errno": error, "mode": mode,
                      "rows": len(read_history(path)["epoch"]) if kind == "csv" else None,
                      "files": sorted(str(p.relative_to(folder)) for p in now),
                      "old_files": sorted(str(p.relative_to(folder)) for p in old),
                      "unchanged": all(now.get(p) == data for p, data in old.items())}),
          flush=True)
    # HDF5 may crash while tearing down the file whose write failed; that is not under test.
    os._exit(0)
""")


@pytest.mark.parametrize("kind", ["csv", "best", "backup"])
def test_a_write_that_fails_halfway_leaves_the_previous_complete_file(tmp_path, kind):
    """Keras' own CSVLogger, ModelCheckpoint and BackupAndRestore fail this: they write in
    place, so the file is left with a half row or a truncated HDF5 file."""
    pytest.importorskip("resource")
    folder = tmp_path / "run"
    folder.mkdir()
    result = subprocess.run([sys.executable, "-c", CHILD, str(folder), kind, oct(UMASK)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["errno"] == 27  # EFBIG: the write really started and failed
    assert outcome["unchanged"], "the previous file was damaged"
    assert outcome["files"] == outcome["old_files"]  # and no temporary file is left
    assert outcome["mode"] == 0o666 & ~UMASK  # the umask's mode, not mkstemp's 0600
    if kind == "csv":
        assert outcome["rows"] == 2
    else:  # the previous checkpoint still loads
        import keras

        inputs = keras.Input((4,))
        model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(
            keras.layers.Dense(64)(inputs)))
        model.load_weights(str(folder / {"best": "best.weights.h5",
                                         "backup": "backup/latest.weights.h5"}[kind]))


def test_training_uses_the_atomic_callbacks(tmp_path):
    import keras

    from edgecv.training.callbacks import (AtomicBackupAndRestore, AtomicCSVLogger,
                                           BestWeightsCheckpoint)
    from edgecv.training.config import TrainConfig
    from edgecv.training.recipe import make_callbacks

    callbacks = make_callbacks(TrainConfig(tensorboard=False), tmp_path, lambda _: None,
                               resuming=False, total_epochs=3)
    kinds = [type(callback) for callback in callbacks]
    for atomic in (BestWeightsCheckpoint, AtomicBackupAndRestore, AtomicCSVLogger):
        assert atomic in kinds
    for in_place in (keras.callbacks.ModelCheckpoint, keras.callbacks.BackupAndRestore,
                     keras.callbacks.CSVLogger):
        assert in_place not in kinds
    # The backup is written before the CSV row, so a row always means its epoch is backed up.
    assert kinds.index(AtomicBackupAndRestore) < kinds.index(AtomicCSVLogger)
