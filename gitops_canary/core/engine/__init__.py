"""The canary engine: Flagger's phase machine as one pure function, :func:`decide`.

``decide(canary, status, observation, checks, now)`` returns what to do next for one canary:

* ``WAIT``: nothing to commit now (not applied yet, an interval still running, a Deployment
  still rolling out, a gate closed); ``reason`` says why, ``wake_at`` when to look again.
* ``NEED``: run these webhook groups or the metrics (in Flagger's order, one group at a time
  when a later one depends on an earlier result), add the results to ``checks``, call again.
* ``CHANGE``: the new status, the edits that go with it (promote the target's template to the
  primary, set the target's replicas), Flagger's events and alerts, and the commit message.

Modules: :mod:`.tick` (the per-tick algorithm), :mod:`.weights` (traffic arithmetic),
:mod:`.writes` (status writes, the ``Promoted`` condition, cookies), :mod:`.wording` (Flagger's
event texts). Deviations from Flagger are documented where they are made.

Pure: no I/O, no clock, no randomness; the same inputs always give the same decision.
"""

from gitops_canary.core.engine.tick import decide

__all__ = ["decide"]
