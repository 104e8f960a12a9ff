"""The control plane's parts, each a module of functions over one ControlPlane
(``merlin.controlplane`` is the facade that names them):

- ``checks``: input checks (target directory, environment names, engine and cluster flags)
- ``submit``: recording a run and handing an attempt to its engine
- ``observe``: status, refresh (reconcile), applying an observation, artifacts
- ``lifecycle``: cancel, retry, wait
- ``logs``: reading and following an attempt's log
"""
