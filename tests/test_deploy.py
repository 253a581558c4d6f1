"""`edgecv camera/predict DIR`: the bench's recommendation picks the artifact and threads (no
TensorFlow; tests/test_bench.py runs it end to end on a real bench)."""

import json

import pytest

from edgecv.deploy import resolve
from edgecv.errors import UsageError


def bench_json(folder, recommendations):
    (folder / "bench.json").write_text(json.dumps({"rows": [], "recommendations": recommendations}))


def choice(path, target="cpu", threads=2):
    return {"target": target, "artifact": path.name, "path": str(path), "threads": threads,
            "summary": f"deploy {path.name}"}


def test_a_file_is_used_as_given(tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"x")
    found = resolve(model, "cpu", 3)
    assert found.model == model and found.threads == 3 and found.source == "the model file given"


def test_a_run_directory_deploys_the_recommendation(tmp_path):
    (tmp_path / "export").mkdir()
    model = tmp_path / "export" / "model_int8.tflite"
    model.write_bytes(b"x")
    bench_json(tmp_path, [choice(model), choice(tmp_path / "export" / "model.onnx", "gpu", None)])
    found = resolve(tmp_path, "cpu")
    assert found.model == model and found.threads == 2 and "deploy model_int8.tflite" in found.source
    assert resolve(tmp_path, "cpu", threads=1).threads == 1  # the user's --threads wins


def test_a_copied_run_finds_the_artifact_by_name(tmp_path):
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "model_int8.tflite").write_bytes(b"x")
    bench_json(tmp_path, [choice(tmp_path / "elsewhere" / "model_int8.tflite")])
    assert resolve(tmp_path).model == tmp_path / "export" / "model_int8.tflite"


@pytest.mark.parametrize("setup, fragment", [
    (lambda d: None, "no bench.json"),
    (lambda d: bench_json(d, [choice(d / "m.tflite", "gpu")]), "recommends nothing for target 'cpu' (it has: gpu)"),
    (lambda d: bench_json(d, [choice(d / "gone.tflite")]), "gone.tflite is not in"),
    (lambda d: (d / "bench.json").write_text("{"), "cannot read"),
])
def test_a_directory_without_a_usable_recommendation_is_a_usage_error(tmp_path, setup, fragment):
    setup(tmp_path)
    with pytest.raises(UsageError) as error:
        resolve(tmp_path, "cpu")
    assert fragment in str(error.value)


def test_a_recorded_path_to_another_file_is_not_loaded(tmp_path):
    """A bench.json whose path names another file (a device's answer, an edited file) does not
    point predict there: the path must end in the artifact's own name."""
    (tmp_path / "export").mkdir()
    model = tmp_path / "export" / "model_int8.tflite"
    model.write_bytes(b"x")
    bench_json(tmp_path, [{**choice(model), "path": "/etc/passwd"}])
    assert resolve(tmp_path).model == model


@pytest.mark.parametrize("artifact", ["../../../etc/passwd", "/etc/passwd", "..", "export/../m.tflite"])
def test_an_artifact_that_is_not_a_file_name_is_refused(tmp_path, artifact):
    (tmp_path / "export").mkdir()
    bench_json(tmp_path, [{**choice(tmp_path / "export" / "m.tflite"), "artifact": artifact,
                           "path": "/etc/passwd"}])
    with pytest.raises(UsageError, match="not an artifact's file name"):
        resolve(tmp_path, "cpu")
