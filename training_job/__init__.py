"""The training job: load data, search a model, export it to ONNX, and promote it only
when it beats the champion on the same holdout (:mod:`training_job.run`).

Run as ``mlsys train`` or, in its container, ``python -m training_job``.
"""
