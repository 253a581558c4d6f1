"""The manual builds strictly (no broken link, no page outside the nav), its CLI reference lists
every command and option of the app, and its Results pages quote the results files. Needs the
`docs` extra (pulled by `test`); no TensorFlow."""

import html
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

pytestmark = pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None,
                                reason="mkdocs is not installed (the docs extra)")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
                            "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)],
                           cwd=ROOT, capture_output=True, text=True, timeout=600,
                           env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert build.returncode == 0, build.stdout + build.stderr
    return out


def page_text(site: Path, page: str) -> str:
    """The visible text of a built page, whitespace collapsed."""
    raw = (site / page / "index.html").read_text()
    raw = re.sub(r"<script.*?</script>", " ", raw, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", raw)).split())


def test_cli_reference_lists_every_command_and_option(site):
    import typer.main

    from edgecv.cli import app

    text = page_text(site, "reference/cli")
    group = typer.main.get_command(app)
    assert group.commands, "the app registers no command"
    for name, command in group.commands.items():
        assert f"edgecv {name} [OPTIONS]" in text, f"no usage of edgecv {name}"
        section = text.split(f"edgecv {name} [OPTIONS]", 1)[1]
        for param in command.params:
            if param.param_type_name == "option":
                for option in param.opts:
                    assert option in section, f"edgecv {name}: {option} missing"
    for param in group.params:
        for option in param.opts:
            assert option in text


def test_every_results_file_is_on_a_results_page_with_its_machine(site):
    pages = {page.name: page_text(site, f"results/{page.name}")
             for page in (site / "results").iterdir() if page.is_dir()}
    for path in RESULTS.glob("*.json"):
        # a heading's visible text ends with its permalink sign
        where = [name for name, text in pages.items() if f"{path.name} ¶" in text]
        assert where, f"{path.name} is on no Results page"
        section = pages[where[0]].split(f"{path.name} ¶", 1)[1].split(" ¶ ", 1)[0]
        assert "Machine:" in section and "Command:" in section, path.name


def table_row(section: str, field: str) -> list[str]:
    """The cells after the ``field`` cell of a generated table row."""
    row = re.search(rf"<code>{re.escape(field)}</code></td>((?:\s*<td>[^<]*</td>)+)", section)
    assert row, f"no {field} row"
    return re.findall(r"<td>([^<]*)</td>", row.group(1))


def test_a_results_figure_equals_its_json(site):
    """The `--all` wall time per run in convert_time.json, and each model's TFLite int8 agreement
    in int8_cifar_intel.json, are the figures their pages show, in order."""
    record = json.loads((RESULTS / "convert_time.json").read_text())
    raw = (site / "results" / "conversion" / "index.html").read_text()
    section = raw.split('id="convert_timejson"', 1)[1].split("<h2", 1)[0]
    assert table_row(section, "all_wall_s") == [repr(round(run["all_wall_s"], 4))
                                                 for run in record["runs"]]
    record = json.loads((RESULTS / "int8_cifar_intel.json").read_text())
    raw = (site / "results" / "int8" / "index.html").read_text()
    section = raw.split('id="int8_cifar_inteljson"', 1)[1].split("<h2", 1)[0]
    agreements = [model["int8"]["agreement"] for model in record["models"]]
    assert table_row(section, "int8.agreement") == [repr(round(a, 4)) for a in agreements]


def test_figures_of_other_machines_are_marked_older(site):
    text = page_text(site, "results/inference")
    section = text.split("bench_cifar_resnet8.json ¶", 1)[1].split(" ¶ ", 1)[0]
    machine = json.loads((RESULTS / "bench_cifar_resnet8.json").read_text())["machine"]
    assert machine["cpu"] in section and "AVX2" in section
    assert "An older machine's figures" in section


def test_readme_is_a_front_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert re.findall(r"```bash\n(.*?)\n```", quick_start, re.S) == [
        'pip install -e ".[train]" && edgecv pipeline',
        'pip install -e ".[train,test]" && python -m pytest']


def test_readme_python_example_imports_what_exists():
    """The README's Python example imports names the package has (no TensorFlow needed)."""
    readme = (ROOT / "README.md").read_text()
    example = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    imports = [line.split("#")[0].strip() for line in example.splitlines()
               if line.startswith(("from ", "import "))]
    assert imports
    for line in imports:
        exec(line, {})


def test_readme_headline_figures_equal_their_json():
    """Each headline figure of the README is the one its results file holds."""
    readme = " ".join((ROOT / "README.md").read_text().split())

    def load(name):
        return json.loads((RESULTS / name).read_text())

    row = next(m for m in load("train_photo_recipe.json")["models"]
               if m["label"] == "time-limit-30m")
    assert row["model"] == "airnet"
    assert f"reached {row['test_accuracy']} test accuracy in {row['epochs_run']} epochs" in readme
    airnet, seed_1 = load("int8_cifar_airnet.json")["models"]
    assert (f"int8 TFLite {airnet['int8']['accuracy']:.4f} (agreement "
            f"{airnet['int8']['agreement']:.4f}) and ONNX int8 "
            f"{airnet['onnx_int8']['accuracy']:.4f}") in readme
    row_1 = next(m for m in load("train_photo_recipe.json")["models"]
                 if m["label"] == "time-limit-30m-seed-1")
    assert seed_1["run"].endswith(row_1["command"].split("--out ")[1].split()[0].split("/")[-1])
    assert (f"with `--seed 1` (another split) {row_1['test_accuracy']}, int8 TFLite "
            f"{seed_1['int8']['accuracy']:.4f}") in readme
    small = {(r["model"], r["train_images"]): r["test_accuracy"]
             for r in load("train_small_data.json")["rows"]}
    for images in (1000, 5000):
        assert f"{small[('airnet', images)]} against" in readme
        assert str(small[("resnet8", images)]) in readme
        assert small[("airnet", images)] > small[("resnet8", images)]  # what --model auto uses
    resnet8 = next(m for m in load("train_cifar.json")["models"] if m["label"] == "time-limit-30m")
    assert f"resnet8 had reached {resnet8['test_accuracy']} in the same 30 minutes" in readme
    models = {m["model"]: m for m in load("int8_cifar_amd_qat.json")["models"]}
    int8 = models["resnet8"]["int8"]
    assert (f"on {round(int8['agreement'], 4)} of the 7,500 held-out photos (accuracy drop "
            f"{int8['accuracy_drop_pp']} pp)") in readme
    assert models["resnet8"]["test_images"] == 7500
    assert f"ds_cnn with `--recover` {round(models['ds_cnn']['int8_mixed']['agreement'], 4)}" in readme
    arena = next(m for m in load("mcu_arena.json")["models"]
                 if m["model"] == "mobilenet_v1_0.25_96x96x3")
    assert (f"needs {arena['total']:,} bytes instead of {arena['candidates']['tflm']['total']:,} "
            f"(-{arena['saving_percent']}%)") in readme
    summary = load("bench_cifar_resnet8.json")["recommendations"][0]["summary"]
    assert summary.startswith("deploy model_int8.onnx on onnxruntime (cpu) with 1 thread")
    for figure in ("p50 0.269 ms", "accuracy 78.43%"):
        assert figure in summary and figure in readme


def test_api_reference_documents_the_public_modules(site):
    """The API page is generated from the docstrings of the API's functions and results, the
    card, runtime, convert and bench modules, and shows their Sphinx roles as code, not as
    ``:class:`` text."""
    text = page_text(site, "reference/api")
    for name in ("ModelCard", "open_backend", "read_card", "convert_run", "BenchRow",
                 "run_benchmark", "BenchSettings"):
        assert name in text, name
    raw = (site / "reference" / "api" / "index.html").read_text()
    for name in ("api.train", "api.convert", "api.inspect", "api.bench", "api.predict",
                 "api.pipeline", "results.Conversion", "results.Inspection"):
        assert f'id="edgecv.{name}"' in raw, name
    assert not re.search(r":(class|func|meth|mod|attr|exc):", text)


def test_the_deploying_guide_s_tflite_micro_figures_equal_mcu_zoo_json():
    """The zoo figures the guide quotes (TFLite Micro against LiteRT's two kernel sets) are
    mcu_zoo.json's."""
    guide = " ".join((ROOT / "docs" / "guides" / "deploying.md").read_text().split())
    record = json.loads((RESULTS / "mcu_zoo.json").read_text())
    rows = {(r["dataset"], r["model"]): r for r in record["models"]}
    assert record["goal"] == {"tflm_agreement_vs_reference_kernels": 0.999}
    assert all(r["tflm_agreement_vs_reference_kernels"] == 1 for r in rows.values())
    assert f"was 100% on all {len(rows)}, the goal (99.9%)" in guide
    for model in ("airnet", "mobilenet_v2"):
        row = rows[("cifar10", model)]
        assert f"{100 * row['tflm_agreement_vs_litert']:.1f}% on {model}" in guide
        # XNNPACK against the reference kernels: the same figures as TFLite Micro against XNNPACK
        assert row["litert_kernels"] == {
            "agreement": row["tflm_agreement_vs_litert"],
            "agreement_counting_ties": row["tflm_agreement_vs_litert_counting_ties"]}
    five_minutes = [r for (dataset, _), r in rows.items()
                    if dataset == "cifar10" and r["trained"]["time_limit_s"] == 300
                    and r["trained"]["epochs"] > 1]
    low = min(r["tflm_agreement_vs_litert"] for r in five_minutes)
    high = max(r["tflm_agreement_vs_litert"] for r in five_minutes)
    assert f"{100 * low:.1f}-{100 * high:.1f}% on the six 5-minute CIFAR-10 models" in guide
    assert len(five_minutes) == 6
    assert all(r["tflm_agreement_vs_litert_counting_ties"] == 1 for r in five_minutes)
    airnet = rows[("cifar10", "airnet")]
    assert (f"airnet's file is {airnet['model_bytes']:,} bytes with a "
            f"{airnet['arena']['total']:,}-byte arena") in guide


def test_the_int8_form_s_figures_in_the_guides_equal_stem_int8_json():
    guide = (ROOT / "docs" / "guides" / "own-photos.md").read_text()
    int8_guide = " ".join((ROOT / "docs" / "guides" / "int8.md").read_text().split())
    runs = {r["run"]: r for r in json.loads((RESULTS / "stem_int8.json").read_text())["runs"]}
    for label, run in (("today's default", "RUNS/auto-time-limit-30m"),
                       ("today's default with `--seed 1`", "RUNS/auto-time-limit-30m-seed-1")):
        row = runs[run]
        cells = [f"{row['fp32_accuracy']:.4f}"] + [
            f"{row[k]['accuracy']:.4f} ({row[k]['agreement']:.4f})" for k in ("nearest", "chosen")]
        assert f"| {label} | {' | '.join(cells)} |" in guide
        assert row["chosen"]["agreement"] >= 0.985 and row["chosen"]["drop_pp"] <= 0.5
    for model in ("resnet8", "ds_cnn", "mini_vgg"):
        row = runs[f"RUNS/cifar10-{model}"]
        assert (f"{row['nearest']['agreement']:.4f} -> {row['chosen']['agreement']:.4f} "
                f"({model})") in int8_guide
