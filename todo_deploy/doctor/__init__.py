"""The diagnosis engine: the built-in doctor of `inv aiops`, and the explanation a
failed `inv deploy` / `inv deploy --helm` prints. No AI tool, no network beyond the API.

`collect()` is the only part that talks to the cluster: through `kube.Kube` it reads
one namespace (objects as the API's JSON) into a `Snapshot`, plus the logs, memory
peaks and node usage the rules need. `diagnose()` turns a snapshot into findings:

1. events that no longer describe a live object are dropped;
2. each pod's symptoms (a container that cannot start, crashes or is OOMKilled, a pod
   the scheduler cannot place, a failing probe) are grouped per workload (Deployment,
   StatefulSet, Job, or a bare Pod): one finding per cause, counting the pods it hits;
3. object causes are added: a workload scaled to 0, a ReplicaSet that cannot create
   pods, an image that differs from what `inv build` recorded, an unbound PVC, a
   failed Job, a Service without endpoints;
4. consequences are folded under their cause, the cause first: a dependent's failing
   readiness probe when what it needs is down, a Service whose pods are all down,
   pods waiting for an unbound PVC.

Every fix hint is written for the cluster provider in use (`Target`).

The package: model.py (the snapshot, workloads, findings), symptoms.py (per pod),
objects.py (per object), hints.py (per provider), engine.py (grouping and causes),
cluster.py (reading the cluster), text.py (a failed rollout's explanation).
"""

from todo_deploy.doctor.engine import diagnose
from todo_deploy.doctor.model import Finding, NamespaceMissing, Snapshot, Target
from todo_deploy.doctor.observe import collect
from todo_deploy.doctor.text import explain

__all__ = [
    "Finding", "NamespaceMissing", "Snapshot", "Target", "collect", "diagnose", "explain",
]
