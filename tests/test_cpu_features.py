"""CPU features for int8 and what the report says about them (no TensorFlow)."""

from edgecv.benchmarks.cpu_features import cpu_flags, int8_features

X86_AVX2 = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse4_2 avx fma avx2\n"
X86_VNNI = "processor\t: 0\nflags\t\t: sse4_2 avx2 avx512f avx512_vnni\n"
PI5 = "processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm aes crc32 asimddp\n"
PI4 = "processor\t: 0\nFeatures\t: fp asimd evtstrm crc32 cpuid\n"


def features(tmp_path, text, machine):
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    return int8_features(cpu_flags(str(path)), machine)


def test_avx2_without_vnni_says_int8_is_not_faster(tmp_path):
    found = features(tmp_path, X86_AVX2, "x86_64")
    assert found["arch"] == "x86" and found["features"] == ["AVX2"]
    assert not found["int8_dot_product"]
    assert "not faster than fp32" in found["outlook"][0]
    assert "QLinearConv" in found["outlook"][1]


def test_vnni_and_arm_dot_product_expect_int8_faster(tmp_path):
    vnni = features(tmp_path, X86_VNNI, "x86_64")
    assert vnni["int8_dot_product"] and "AVX-512 VNNI" in vnni["features"]
    assert "expected to be faster" in vnni["outlook"][0]
    pi5 = features(tmp_path, PI5, "aarch64")
    assert pi5["arch"] == "arm" and pi5["int8_dot_product"]
    assert "expected to be faster" in pi5["outlook"][0]
    pi4 = features(tmp_path, PI4, "aarch64")
    assert not pi4["int8_dot_product"] and "gains little speed" in pi4["outlook"][0]


def test_unknown_cpu(tmp_path):
    assert cpu_flags(str(tmp_path / "missing")) == set()
    assert "unknown" in int8_features(set(), "x86_64")["outlook"][0]


def test_this_machine_reads_its_own_flags():
    found = int8_features(cpu_flags())
    assert found["outlook"]  # whatever the CPU, the report says something about int8
