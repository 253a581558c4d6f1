"""The int8 form on trained runs: int8 TFLite with the weights of the convolution on the image
rounded to nearest and rounded for the data (edgecv.converters.stem), on the same images.

    python benchmarks/experiments/stem_int8.py --runs RUN [RUN ...] [--json FILE]

For each run, from its export form (:func:`edgecv.converters.fuse.export_form`, what ``edgecv
convert`` builds from) and the same calibration (300 images of the run's training split, as
convert takes them): the int8 TFLite file with every weight rounded to nearest, and the one
convert now makes (:func:`edgecv.converters.stem.int8_form`). Both run in LiteRT on the run's
test split; accuracy, drop and top-1 agreement are against the model as it is. Where the weights'
rounding costs: the float model with its weights on the int8 grid (rounded to nearest per output
channel, as the converter does) for every layer, for the convolutions on the image alone and for
every other layer alone; and every layer with the image convolutions' rounding chosen. Writes
benchmarks/results/stem_int8.json with the machine record.
"""

from __future__ import annotations

import sys

from _common import int8_figures, measure_runs, run_label


def weights_agreement(model, chosen, stems: set[str], x, reference) -> dict:
    """Top-1 agreement of the float model with the kernels of some layers on their int8 grid
    (:func:`edgecv.converters.rounding.weights_on_int8_grid`); ``chosen`` (the int8 form) has
    its image convolutions' kernels on the grid already, rounded for the data."""
    from edgecv.converters.rounding import weights_on_int8_grid
    from edgecv.converters.verify import agreement

    def agree(source, only=None) -> float:
        with weights_on_int8_grid(source, only):
            return round(agreement(source.predict(x, batch_size=256, verbose=0), reference), 5)

    return {"every_layer": agree(model),
            "image_convolutions_alone": agree(model, lambda layer: layer.name in stems),
            "every_other_layer": agree(model, lambda layer: layer.name not in stems),
            "every_layer_image_convolutions_chosen": agree(chosen)}


def measure(run) -> dict:
    from edgecv.converters.fuse import export_form
    from edgecv.converters.load import load_run
    from edgecv.converters.stem import int8_form

    data = load_run(run)
    reference = data.model.predict(data.test_x, batch_size=256, verbose=0)
    fp32 = float((reference.argmax(1) == data.test_y).mean())
    model, _ = export_form(data.model, data.calibration[:64])
    chosen, lines = int8_form(model, data.calibration)
    stems = {line.split(":")[0] for line in lines}
    row = {"run": run_label(run), "model": data.train_config["model"],
           "test_images": int(len(data.test_y)), "fp32_accuracy": round(fp32, 5),
           "image_convolutions": lines}
    for name, source in (("nearest", model), ("chosen", chosen)):
        _, row[name] = int8_figures(source, data, reference, fp32)
    row["weights_alone_agreement"] = weights_agreement(model, chosen, stems, data.test_x,
                                                       reference)
    return row


def summary(row: dict) -> str:
    before, after = row["nearest"], row["chosen"]
    return (f"{row['run']}: fp32 {row['fp32_accuracy']:.4f}; int8 nearest "
            f"{before['accuracy']:.4f} (agreement {before['agreement']:.4f}), chosen "
            f"{after['accuracy']:.4f} (agreement {after['agreement']:.4f}); weights alone "
            f"{row['weights_alone_agreement']}")


def main(argv: list[str] | None = None) -> int:
    return measure_runs(__doc__, __file__, measure, summary, argv)


if __name__ == "__main__":
    sys.exit(main())
