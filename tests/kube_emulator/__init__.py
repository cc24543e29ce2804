"""A Kubernetes API emulator for tests: the real REST API over HTTP, pods as local processes.

No kube-apiserver can be installed on the machines that run these tests, so this package plays one: the store
and REST layer (``api``), the Deployment and ReplicaSet controllers (``controllers``), and a kubelet plus
Service routers that run pods as real processes of the example service (``cluster``).
"""

from kube_emulator.cluster import Cluster

__all__ = ["Cluster"]
