"""`--recover` with 16-bit activations against float for the worst tensors, on real runs.

    python benchmarks/experiments/recover_mix.py --runs RUN... [--max-drop 0.05]
        [--json PATH]

For each run, `edgecv convert RUN --int8 --recover --max-drop X` twice in this process, once
with ``--recover-mix int16`` and once with ``--recover-mix float``, into temporary folders. The
budget is set tight on purpose, so that plain int8 is over it and both mixes are made. Recorded
per mix: the ops it changed, the drop and agreement on the held-out test split, whether it met
the budget, its median 1-thread latency (LiteRT) and its cost vs full int8, and the steps it
took on the validation slice; and the agreement on that slice of TF's full int8 against the
AI Edge Quantizer's int8, int16-activation and weight-only recipes
(:func:`quantizer_baselines`). Output: benchmarks/results/recover_mix.json with the machine.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from _common import run_label, runs_parser

KEYS = ("mix", "accuracy_drop_pp", "agreement", "within_budget", "p50_ms_1_thread",
        "latency_cost_vs_int8", "check_drop_pp")


def quantizer_baselines(run: Path) -> dict:
    """Top-1 agreement with Keras on the validation slice that ``--recover`` decides on, of the
    TF converter's full int8 and of the AI Edge Quantizer's recipes: full int8 (calibrated on
    one batch, as edgecv does, and one image per step, the quantizer's moving-average ranges),
    int16 activations everywhere, int8 weights alone (float activations). Where the quantizer's
    own int8 loses more than TF's, no int16 mix of it can recover to TF's level."""
    from edgecv.converters import aeq
    from edgecv.converters.cards import with_tflite_card
    from edgecv.converters.load import load_run
    from edgecv.converters.tflite import to_tflite_fp32, to_tflite_int8
    from edgecv.converters.verify import agreement, artifact_scores, check_data

    loaded = load_run(run)
    x, _y, where = check_data(loaded)
    reference = loaded.model.predict(x, batch_size=256, verbose=0)
    fp32 = to_tflite_fp32(loaded.model)
    candidates = {"tf_int8": to_tflite_int8(loaded.model, loaded.calibration),
                  "quantizer_int8": aeq.quantize(fp32, loaded.calibration, 8)[1],
                  "quantizer_int8_per_image_calibration": aeq.quantize(
                      fp32, loaded.calibration, 8, per_image=True)[1],
                  "quantizer_int16_activations": aeq.quantize(fp32, loaded.calibration, 16)[1],
                  "quantizer_int8_weights_only": aeq.weight_only(fp32)}
    found = {"on": where}
    with tempfile.TemporaryDirectory() as workdir:
        for name, data in candidates.items():
            path = Path(workdir) / f"{name}.tflite"
            path.write_bytes(with_tflite_card(data, loaded, "tflite_int8"))
            found[name] = round(agreement(artifact_scores(path, x), reference), 5)
    return found


def main(argv: list[str] | None = None) -> dict:
    parser = runs_parser(__doc__, "recover_mix.json")
    parser.add_argument("--max-drop", type=float, default=0.05)
    args = parser.parse_args(argv)

    from edgecv.benchmarks.machine import machine_info
    from edgecv.converters.convert import convert_run
    from edgecv.errors import AccuracyDropError

    results = []
    for run in args.runs:
        record = {"run": run_label(run), "max_drop_pp": args.max_drop, "mixes": {}}
        for mix in ("int16", "float"):
            with tempfile.TemporaryDirectory() as workdir:
                try:
                    convert_run(run, ["int8"], out_dir=workdir, max_drop=args.max_drop,
                                recover=True, recover_mix=mix, log=lambda _: None)
                except AccuracyDropError:
                    pass  # a mix that misses the budget is a result too
                report = json.loads((Path(workdir) / "conversion.json").read_text())
            rows = {row["format"]: row for row in report["artifacts"]}
            plain, mixed = rows["int8"], rows.get("int8_mixed")
            record["int8"] = {k: plain.get(k) for k in ("accuracy_drop_pp", "agreement")}
            if mixed is None:
                record["mixes"][mix] = {"made": False}
                continue
            entry = {k: mixed.get(k) for k in KEYS}
            entry["int16_ops"] = len(mixed.get("int16_layers", []))
            entry["float_ops"] = len(mixed.get("float_layers", []))
            entry["steps"] = mixed.get("steps") or mixed.get("int16_steps")
            record["mixes"][mix] = entry
            print(f"{run.name} {mix}: {entry['mix']}, drop {entry['accuracy_drop_pp']} pp, "
                  f"agreement {entry['agreement']:.4f}, p50 {entry['p50_ms_1_thread']} ms "
                  f"({entry['latency_cost_vs_int8']}x int8)", flush=True)
        record["agreement_on_check"] = quantizer_baselines(run)
        print(f"{run.name}: {record['agreement_on_check']}", flush=True)
        results.append(record)
    output = {"command": "python benchmarks/experiments/recover_mix.py --runs "
                         + " ".join(run_label(r) for r in args.runs)
                         + f" --max-drop {args.max_drop}",
              "machine": machine_info(), "runs": results}
    args.json.write_text(json.dumps(output, indent=2) + "\n")
    return output


if __name__ == "__main__":
    main()
