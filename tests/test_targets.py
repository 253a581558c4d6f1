"""Target probing, applicability and the machine record: numpy only, no hardware, no TensorFlow.

The probes must say *why* a target is absent, and must never report a target as present
because a library merely imports: these tests fake each missing piece in turn.
"""

import numpy as np
import pytest

from edgecv.benchmarks import machine
from edgecv.timing import latency_percentiles, time_call
from edgecv.errors import UsageError
from edgecv.modelfile.kinds import runtime_for
from edgecv.runtime import targets


@pytest.fixture(autouse=True)
def fresh_probe_cache():
    targets.probe.cache_clear()
    yield
    targets.probe.cache_clear()


def test_parse_targets_all_dedup_and_suggestion():
    assert targets.parse_targets("all") == ["cpu", "gpu", "tpu", "edgetpu"]
    assert targets.parse_targets("cpu, gpu,cpu") == ["cpu", "gpu"]
    with pytest.raises(UsageError, match="unknown target 'edgtpu'. Did you mean 'edgetpu'"):
        targets.parse_targets("cpu,edgtpu")


@pytest.mark.parametrize("name, runtime", [("m.tflite", "litert"), ("m.onnx", "onnxruntime"),
                                           ("m.keras", "keras"), ("m.h5", "keras")])
def test_runtime_for_file_types(name, runtime):
    assert runtime_for(name) == runtime


def test_runtime_for_unknown_type():
    with pytest.raises(UsageError, match="unknown model file type '.pt'"):
        runtime_for("model.pt")


def test_gpu_onnx_absent_names_the_missing_provider(monkeypatch):
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    reason = targets.probe("gpu", "onnxruntime")
    assert "no CUDA/TensorRT provider" in reason and "CPUExecutionProvider" in reason


def test_gpu_onnx_present_when_cuda_is_listed(monkeypatch):
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "TensorrtExecutionProvider",
                                 "CPUExecutionProvider"])
    assert targets.probe("gpu", "onnxruntime") is None
    assert targets.available_gpu_providers() == ["TensorrtExecutionProvider", "CUDAExecutionProvider"]


def test_onnx_gpu_session_that_falls_back_to_cpu_is_refused(monkeypatch, tmp_path):
    """ONNX Runtime silently runs on the CPU when a GPU provider cannot start: that must be an
    'unavailable' with the reason, never a GPU figure measured on the CPU."""
    import onnx
    from onnx import TensorProto, helper

    import onnxruntime

    graph = helper.make_graph([helper.make_node("Relu", ["input"], ["scores"])], "g",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 8, 8, 1])],
                              [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 8, 8, 1])])
    path = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    monkeypatch.setattr(onnxruntime, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    from edgecv.runtime import open_backend
    from edgecv.errors import BackendUnavailable

    with pytest.raises(BackendUnavailable, match="fell back to"):
        open_backend(path, target="gpu")


def test_tpu_absent_without_env_or_device(monkeypatch):
    # TPU_ACCELERATOR_TYPE too: a Cloud TPU VM sets it, and this test must pass there as well.
    for variable in ("TPU_NAME", "COLAB_TPU_ADDR", "TPU_ACCELERATOR_TYPE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr("edgecv.runtime.tpu.glob.glob", lambda pattern: [])
    assert "no TPU found" in targets.probe("tpu", "keras")


def test_edgetpu_absent_library_then_absent_device(monkeypatch, tmp_path):
    monkeypatch.setattr(targets, "_library_loads", lambda name: False)
    assert "libedgetpu.so.1 is not installed" in targets.probe("edgetpu", "litert")
    targets.probe.cache_clear()
    monkeypatch.setattr(targets, "_library_loads", lambda name: True)
    monkeypatch.setattr(targets, "edgetpu_devices", lambda: [])
    monkeypatch.setattr(targets.platform, "system", lambda: "Linux")
    assert "no Edge TPU device is attached" in targets.probe("edgetpu", "litert")
    targets.probe.cache_clear()
    monkeypatch.setattr(targets, "edgetpu_devices", lambda: ["/dev/apex_0"])
    assert targets.probe("edgetpu", "litert") is None


def test_edgetpu_devices_finds_pcie_and_usb(tmp_path):
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "apex_0").write_text("")
    for name, ids in (("1-1", ("18d1", "9302")), ("1-2", ("046d", "c52b")), ("2-1", ("1a6e", "089a"))):
        device = tmp_path / "sys/bus/usb/devices" / name
        device.mkdir(parents=True)
        (device / "idVendor").write_text(ids[0] + "\n")
        (device / "idProduct").write_text(ids[1] + "\n")
    found = targets.edgetpu_devices(str(tmp_path))
    assert found[0].endswith("dev/apex_0")
    assert found[1:] == ["usb:18d1:9302 (1-1)", "usb:1a6e:089a (2-1)"]  # the mouse is not one


def test_edgetpu_library_name_per_platform(monkeypatch):
    for system, name in (("Linux", "libedgetpu.so.1"), ("Darwin", "libedgetpu.1.dylib"),
                         ("Windows", "edgetpu.dll")):
        monkeypatch.setattr(targets.platform, "system", lambda s=system: s)
        assert targets.edgetpu_library() == name


@pytest.mark.parametrize("target, runtime, compiled, fragment", [
    ("tpu", "litert", False, "runs the Keras model"),
    ("tpu", "onnxruntime", False, "runs the Keras model"),
    ("edgetpu", "onnxruntime", False, "only .tflite files compiled"),
    ("edgetpu", "keras", False, "only .tflite files compiled"),
    ("edgetpu", "litert", False, "not compiled for the Edge TPU"),
    # a row's reason, printed by the CLI and written into the reports: the command to run
    ("edgetpu", "litert", False, "or edgecv convert --edgetpu with the compiler on PATH"),
    ("cpu", "litert", True, "runs only with the libedgetpu delegate"),
    ("gpu", "litert", True, "runs only with the libedgetpu delegate"),
])
def test_not_applicable_matrix(target, runtime, compiled, fragment):
    assert fragment in targets.not_applicable(target, runtime, compiled)


@pytest.mark.parametrize("target, runtime, compiled", [
    ("cpu", "litert", False), ("cpu", "onnxruntime", False), ("cpu", "keras", False),
    ("gpu", "onnxruntime", False), ("gpu", "litert", False), ("gpu", "keras", False),
    ("tpu", "keras", False), ("edgetpu", "litert", True)])
def test_applicable_pairs(target, runtime, compiled):
    assert targets.not_applicable(target, runtime, compiled) is None


# --- machine record -----------------------------------------------------------------------------

def test_governors_and_warning(tmp_path):
    for cpu, governor in (("cpu0", "powersave"), ("cpu1", "performance")):
        folder = tmp_path / cpu / "cpufreq"
        folder.mkdir(parents=True)
        (folder / "scaling_governor").write_text(governor + "\n")
    found = machine.governors(str(tmp_path))
    assert found == {"cpu0": "powersave", "cpu1": "performance"}
    assert machine.governor_summary(found) == "mixed: performance, powersave"
    assert machine.governor_summary({}) == "unknown (no cpufreq)"
    info = {"governor": "powersave", "usable_cores": 2}
    warnings = machine.machine_warnings(info, load_average=(0.1, 0, 0))
    assert len(warnings) == 1 and "'powersave', not 'performance'" in warnings[0]
    assert machine.machine_warnings({"governor": "performance", "usable_cores": 2}, (0.1, 0, 0)) == []
    assert machine.machine_warnings({"governor": "unknown (no cpufreq)", "usable_cores": 2},
                                    (0.1, 0, 0)) == []


def test_busy_machine_is_warned_about():
    warnings = machine.machine_warnings({"governor": "performance", "usable_cores": 2}, (1.7, 0, 0))
    assert len(warnings) == 1 and "load average is 1.70 on 2 cores" in warnings[0]


def test_cpu_model_from_cpuinfo(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n")
    assert machine.cpu_model(str(path)) == "AMD EPYC 7B13"


def test_machine_info_records_versions_and_memory():
    info = machine.machine_info()
    assert info["cores"] >= 1 and info["versions"]["numpy"] == np.__version__
    assert machine.peak_rss_mb() > 10 and machine.current_rss_mb() > 10


# --- the timing loop ----------------------------------------------------------------------------

def test_time_call_meets_runs_and_counts_calls():
    calls = []
    stats, raw = time_call(lambda: calls.append(1), runs=37, min_time_s=0, warmup=5)
    assert stats.runs == len(raw) == 37
    assert len(calls) == 1 + 5 + 37  # first call, warm-up, timed


def test_time_call_keeps_running_until_min_time():
    stats, raw = time_call(lambda: sum(range(2000)), runs=1, min_time_s=0.05, warmup=0)
    assert raw.sum() >= 0.05e9 * 0.9 and stats.runs > 1


def test_latency_percentiles_on_known_samples():
    samples = np.arange(1, 101) * 1_000_000  # 1..100 ms
    stats = latency_percentiles(samples, first_ns=7_000_000, batch_size=2)
    assert stats.first_ms == 7.0 and stats.min_ms == 1.0 and stats.max_ms == 100.0
    assert stats.p50_ms == pytest.approx(50.5) and stats.p90_ms == pytest.approx(90.1)
    assert stats.throughput_per_s == pytest.approx(2 * 1000 / 50.5)


def test_time_call_refuses_bad_settings():
    with pytest.raises(ValueError, match="runs=0"):
        time_call(lambda: None, runs=0)
