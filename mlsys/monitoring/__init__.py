"""Model monitoring: feature and prediction drift against the training baseline, and
live quality from ground-truth feedback, computed from the system log.

Pure functions (:mod:`~mlsys.monitoring.drift`; live quality uses training's own
:mod:`mlsys.metrics`), bounded-memory aggregation (:mod:`~mlsys.monitoring.collect`), the run itself
(:mod:`~mlsys.monitoring.monitor`) and the HTML report
(:mod:`~mlsys.monitoring.report`). Only NumPy is needed, so the scheduled monitor
runs from the same Lambda bundle as serving.
"""
