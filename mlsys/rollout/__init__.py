"""Staged rollout of a new champion: canary and shadow, from start to complete or abort.

A promotion is either *direct* (the pointer moves at once) or starts a rollout:

``canary``
    The candidate answers a fixed fraction of requests. Which ones is decided by
    hashing the request id (:func:`~mlsys.rollout.state.routes_to_candidate`), so the
    split needs no coordination between serving containers and a retried request id
    lands on the same model. The response's ``model_version`` says which model answered.
``shadow``
    The champion answers every request; the candidate also runs on it and its
    output is logged as a ``shadow`` event (both versions, both outputs, their
    deviation: :mod:`mlsys.rollout.shadow`). Clients never see the candidate's output.

The rollout is stored *inside* ``champion.json`` (:class:`mlsys.registry.Rollout`), so
the champion and the rollout are one object written with one compare-and-swap: every
container sees one consistent state, completing a rollout (candidate becomes champion,
rollout cleared) is a single atomic write, and a crash at any step leaves the previous
state serving.

The modules, one per concern:

:mod:`~mlsys.rollout.state`
    routing and the transitions (start, complete, abort) with their log events;
:mod:`~mlsys.rollout.policy`
    the pure decision: system-log events -> evidence -> complete / abort / pending;
:mod:`~mlsys.rollout.quality`
    live quality of both models from ``feedback`` events;
:mod:`~mlsys.rollout.shadow`
    running the candidate beside the champion and measuring their deviation;
:mod:`~mlsys.rollout.evaluation`
    the evaluate step (read evidence, decide, apply), shared by the CLI and AWS;
:mod:`~mlsys.rollout.scheduled`
    the scheduled evaluator's run on AWS (metrics and notifications; its Lambda entry
    point is in :mod:`lambda_inference.entrypoints`).
"""
