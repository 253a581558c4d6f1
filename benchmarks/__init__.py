"""edgecv.benchmarks: the timing engine, targets and suites (the only code in edgecv that measures).

Today it holds the training-throughput benchmark (``python -m edgecv.benchmarks.train_throughput``);
the inference timing loop arrives with the `edgecv bench` issue.
"""
