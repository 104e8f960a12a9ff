"""The control plane's parts, each a module of functions over one control plane
(``merlin.controlplane`` is the facade that names them). Each takes
``merlin.control.plane.Plane``, the protocol of what the parts use, never the facade:

- ``plane``: the ``Plane`` protocol (``ControlPlane`` satisfies it)
- ``checks``: input checks (target directory, environment names, engine and cluster flags)
- ``submit``: recording a run and handing an attempt to its engine
- ``observe``: status, refresh (reconcile), applying an observation, artifacts
- ``lifecycle``: cancel, retry, wait
- ``logs``: reading and following an attempt's log
- ``leased``: a run that waits for its lease, holds it while it runs and releases it
- ``why``: every condition holding a run back, layer by layer
- ``summaries``: run summaries kept between calls (the gateway's ``runs_list``)
- ``artifacts``: one artifact read, its digest checked
"""
