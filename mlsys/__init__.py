"""mlsys: champion/challenger training, an ONNX model registry and Lambda serving.

The package holds what training and inference share: the model-artifact
contract (:mod:`mlsys.contract`), the model registry (:mod:`mlsys.registry`),
the system log (:mod:`mlsys.eventlog`), runtime settings
(:mod:`mlsys.settings`) and the ``mlsys`` command line (:mod:`mlsys.cli`).
Nothing here imports scikit-learn, so the inference package stays small.
"""

__version__ = "0.1.0"
