"""Issue 23 item 3, the part the test cluster can show: it has no ingress controller, so
nothing answers on an Ingress here. What is live: the API server (v1.20) accepts the
chart's Ingress and the self-signed TLS Secret as the deploy makes them, reads them back
unchanged, and the doctor, reading the namespace, names the missing controller."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

from tests.integration.conftest import PREFIX, drop_namespace
from todo_deploy import doctor
from todo_deploy.chart import ingress, manifests
from todo_deploy.chart import values as chart_values
from todo_deploy.config import load_settings
from todo_deploy.doctor.ingress import ingress_findings
from todo_deploy.kube import Kube
from todo_deploy.release.objects import PSS_LABELS

HOST = "todo.example.test"


def test_the_api_server_takes_the_ingress_and_the_doctor_names_the_missing_controller(
    kube_cluster: None, tmp_path: Path,
) -> None:
    suffix = uuid.uuid4().hex[:6]
    loaded = load_settings(tmp_path, {
        "CLUSTER_PROVIDER": "existing", "KUBE_CONTEXT": os.environ.get("TEST_KUBE_CONTEXT", ""),
        "NAMESPACE": f"{PREFIX or 'it-'}ing-{suffix}", "RELEASE_NAME": f"{PREFIX or 'todo-'}{suffix}",
        "INGRESS_HOST": HOST, "LLM_PROVIDER": "offline",
    })
    settings = loaded.settings
    kube = Kube(settings.context_name)
    kube.ensure_namespace(settings.namespace, PSS_LABELS)
    try:
        rendered = manifests.render_manifests(settings, chart_values.default_images())
        (wanted,) = [o for o in rendered if o["kind"] == "Ingress"]
        kube.apply(wanted)
        assert ingress.ensure_tls_secret(kube, settings) == [ingress.tls_secret_name(settings)]

        back = kube.get("networking.k8s.io/v1", "Ingress", wanted["metadata"]["name"],
                        settings.namespace)
        assert back is not None and back["spec"] == wanted["spec"]
        secret = kube.get("v1", "Secret", ingress.tls_secret_name(settings), settings.namespace)
        assert secret is not None and secret["type"] == "kubernetes.io/tls"
        assert secret["metadata"]["annotations"][ingress.HOST_ANNOTATION] == HOST

        snapshot = doctor.collect(kube, settings.namespace)
        assert [o["metadata"]["name"] for o in snapshot.ingresses] == [wanted["metadata"]["name"]]
        (finding,) = ingress_findings(snapshot.ingresses, snapshot.ingress_classes,
                                      doctor.Target.of(settings), datetime.now(UTC), grace_s=0)
        assert finding.evidence.startswith("no ingress controller: no IngressClass serves class nginx")
    finally:
        drop_namespace(loaded)
