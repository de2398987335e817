"""The training job: load data, search a model, export it to ONNX, and promote it only
when it beats the champion on the same holdout (:mod:`training_job.run`).

Run as ``mlsys train`` (:mod:`mlsys.cli.train`); its container runs ``python -m mlsys train --emf``.
"""
