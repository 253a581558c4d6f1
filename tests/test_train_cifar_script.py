"""benchmarks/experiments/train_cifar.py: the row of an adopted run (no TensorFlow)."""

import json

from conftest import import_experiment

adopted_row = import_experiment("train_cifar").adopted_row


def test_an_adopted_run_gets_its_command_curve_and_time_to_target(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    train = {"data": "/data/cifar.tar.xz", "model": "resnet8", "epochs": 3, "batch_size": 64,
             "optimizer": "sgd", "lr": 0.05, "weight_decay": 0.0005, "label_smoothing": 0.1}
    (run / "config.json").write_text(json.dumps(
        {"train": train, "data": {"sizes": {"train": 7, "val": 2, "test": 2}}}))
    (run / "metrics.json").write_text(json.dumps(
        {"test_accuracy": 0.8, "epochs_run": 3, "training_time_s": 9.0, "images_per_s": 2.3,
         "params": 10, "macs": 20}))
    (run / "history.csv").write_text("epoch,epoch_time_s,val_accuracy\n"
                                     "0,3.0,0.5\n1,2.5,0.86\n2,3.5,0.84\n")
    row = adopted_row(run, 0.85)
    assert row["command"] == ("edgecv train --data /data/cifar.tar.xz --model resnet8 --out "
                              f"{run} --no-tensorboard --epochs 3 --weight-decay 0.0005 "
                              "--label-smoothing 0.1 --optimizer sgd --lr 0.05")
    assert row["curve_s_val_accuracy"] == [[3.0, 0.5], [5.5, 0.86], [9.0, 0.84]]
    assert (row["time_to_target_s"], row["epochs_to_target"]) == (5.5, 2)
    assert row["best_val_accuracy"] == 0.86 and row["adopted"] is True
    assert row["command_wall_s"] is None and row["recipe"]["weight_decay"] == 0.0005
