{{/*
Expand the name of the chart.
*/}}
{{- define "todo-chatbot.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: the prefix of every object name. If the release name
contains the chart name it is used as is. Cut at 63 characters only as a guard
(for a long fullnameOverride): "todo-chatbot.objectName" fits each object's own
limit.
*/}}
{{- define "todo-chatbot.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The name of one object: <fullname>-<suffix>, the fullname cut (never the
suffix) so that the whole is at most `max` characters (default 63, a DNS label:
Services, Jobs). A StatefulSet passes 52, leaving room for the
controller-revision-hash label (<name>-<10 chars>). Every object name comes from
here (through "todo-chatbot.names"), so both deploy modes agree: the raw path
renders this chart too. For every release name `inv config` accepts (1-53 characters, fullnameOverride =
the release name) only the StatefulSet (from 44) and the migration Job (from 43)
are ever cut: Services, Deployments and Secrets stay <release>-<component>.
Usage: include "todo-chatbot.objectName" (dict "ctx" $ "suffix" "backend" ["max" 52])
*/}}
{{- define "todo-chatbot.objectName" -}}
{{- $max := .max | default 63 | int -}}
{{- $room := sub $max (add1 (len .suffix)) | int -}}
{{- $prefix := include "todo-chatbot.fullname" .ctx | trunc $room | trimSuffix "-" -}}
{{- printf "%s-%s" $prefix .suffix -}}
{{- end }}

{{/*
Every object name of a release, in one table (each cut to its own limit by
"todo-chatbot.objectName"). Usage:
{{- $n := include "todo-chatbot.names" . | fromYaml }} ... name: {{ $n.backend }}
*/}}
{{- define "todo-chatbot.names" -}}
{{- $o := "todo-chatbot.objectName" -}}
backend: {{ include $o (dict "ctx" . "suffix" "backend") }}
frontend: {{ include $o (dict "ctx" . "suffix" "frontend") }}
config: {{ include $o (dict "ctx" . "suffix" "config") }}
postgres: {{ include $o (dict "ctx" . "suffix" "postgres") }}
postgresStatefulSet: {{ include $o (dict "ctx" . "suffix" "postgres" "max" 52) }}
migrationJob: {{ include "todo-chatbot.migrationJobName" . }}
migration: {{ include $o (dict "ctx" . "suffix" "migration") }}
defaultDeny: {{ include $o (dict "ctx" . "suffix" "default-deny") }}
testBackend: {{ include $o (dict "ctx" . "suffix" "test-backend") }}
testFrontend: {{ include $o (dict "ctx" . "suffix" "test-frontend") }}
ingressTls: {{ include $o (dict "ctx" . "suffix" "ingress-tls") }}
{{- end }}

{{/*
Chart name and version as used by the chart label.
*/}}
{{- define "todo-chatbot.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The app name of a component (the app.kubernetes.io/name label).
Usage: include "todo-chatbot.componentName" "backend"
*/}}
{{- define "todo-chatbot.componentName" -}}
{{- $names := dict "backend" "todo-backend" "frontend" "todo-frontend" "database" "postgresql" "migration" "todo-migrate" "test" "todo-test" "config" "todo-chatbot" "network" "todo-chatbot" "namespace" "todo-chatbot" -}}
{{- get $names . -}}
{{- end }}

{{/*
Selector labels of a component. Usage:
include "todo-chatbot.selectorLabels" (dict "ctx" $ "component" "backend")
*/}}
{{- define "todo-chatbot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "todo-chatbot.componentName" .component }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- end }}

{{/*
Common labels of a component's objects. Usage as selectorLabels.
*/}}
{{- define "todo-chatbot.labels" -}}
helm.sh/chart: {{ include "todo-chatbot.chart" .ctx }}
{{ include "todo-chatbot.selectorLabels" . }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/part-of: todo-chatbot
app.kubernetes.io/managed-by: {{ .ctx.Values.managedBy | default .ctx.Release.Service }}
{{- if .ctx.Chart.AppVersion }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
{{- end }}
{{- end }}

{{/*
The ServiceAccount name of a component (the migration Job and the test pods
use the backend's). Usage as selectorLabels.
*/}}
{{- define "todo-chatbot.serviceAccountName" -}}
{{- $key := get (dict "backend" "backend" "frontend" "frontend" "database" "postgres" "migration" "backend" "test" "backend") .component -}}
{{- get (include "todo-chatbot.names" .ctx | fromYaml) $key -}}
{{- end }}

{{/*
An image reference from {repository, tag}; an empty tag keeps the repository
as is (e.g. a digest reference). Usage: include "todo-chatbot.image" .Values.backend.image
*/}}
{{- define "todo-chatbot.image" -}}
{{- if .tag -}}
{{- printf "%s:%s" .repository .tag -}}
{{- else -}}
{{- .repository -}}
{{- end -}}
{{- end }}

{{/*
The migration Job's name: <fullname>-migrate-<migration.key, else the backend
tag's first 12 characters, lower-case alphanumerics> (build tags are 12 hex
characters). By tag, a new image migrates again and two images never share one
immutable Job; `inv deploy` sets migration.key to a hash of the migrations (and
the database), so an image with the same migrations keeps the finished Job.
*/}}
{{- define "todo-chatbot.migrationJobName" -}}
{{- $tag := regexReplaceAll "[^a-z0-9]" (lower (.Values.migration.key | default .Values.backend.image.tag | default "0")) "" | trunc 12 | default "0" -}}
{{- include "todo-chatbot.objectName" (dict "ctx" . "suffix" (printf "migrate-%s" $tag)) -}}
{{- end }}

{{/*
Secret names: the existing Secret when set, else the one the chart creates
(named like the component's objects).
*/}}
{{- define "todo-chatbot.backendSecretName" -}}
{{- .Values.secrets.existingSecret.backend | default (include "todo-chatbot.names" . | fromYaml).backend -}}
{{- end }}
{{- define "todo-chatbot.frontendSecretName" -}}
{{- .Values.secrets.existingSecret.frontend | default (include "todo-chatbot.names" . | fromYaml).frontend -}}
{{- end }}
{{- define "todo-chatbot.postgresSecretName" -}}
{{- .Values.secrets.existingSecret.postgres | default (include "todo-chatbot.names" . | fromYaml).postgres -}}
{{- end }}

{{/*
The ConfigMap's data: non-secret app settings only.
*/}}
{{- define "todo-chatbot.configData" -}}
{{- $n := include "todo-chatbot.names" . | fromYaml -}}
LLM_PROVIDER: {{ .Values.config.llmProvider | quote }}
LLM_MODEL: {{ .Values.config.llmModel | quote }}
OPENAI_BASE_URL: {{ .Values.config.openaiBaseUrl | quote }}
BACKEND_URL: {{ printf "http://%s:8000" $n.backend | quote }}
DRAIN_SECONDS: {{ .Values.config.drainSeconds | quote }}
LOG_LEVEL: {{ .Values.config.logLevel | quote }}
DB_PROBE_SECONDS: {{ .Values.config.dbProbeSeconds | quote }}
DB_POOL_SIZE: {{ .Values.config.dbPoolSize | quote }}
{{- end }}

{{/*
The pod annotations that roll the pods when their settings change:
checksum/config hashes the ConfigMap's data; checksum/secret is the given
checksum of the existing Secrets (`inv deploy` hashes the data it puts in
them), else the hash of the Secrets this chart renders.
*/}}
{{- define "todo-chatbot.checksums" -}}
checksum/config: {{ include "todo-chatbot.configData" . | sha256sum }}
checksum/secret: {{ .Values.secrets.secretChecksum | default (include (print .Template.BasePath "/secrets.yaml") . | sha256sum) }}
{{- end }}

{{/*
The API version the cluster (or `helm template --api-versions/--kube-version`) serves
for a PodDisruptionBudget / HorizontalPodAutoscaler, empty where it serves none:
policy/v1 from 1.21 (policy/v1beta1 before it, removed in 1.25), autoscaling/v2 from
1.23 (autoscaling/v2beta2 from 1.12, removed in 1.26). Offline, the engine's default
API set has them all, so the version decides.
*/}}
{{- define "todo-chatbot.pdbApiVersion" -}}
{{- $v := .Capabilities.KubeVersion.Version -}}
{{- if and (.Capabilities.APIVersions.Has "policy/v1") (semverCompare ">=1.21-0" $v) -}}policy/v1
{{- else if and (.Capabilities.APIVersions.Has "policy/v1beta1") (semverCompare "<1.25-0" $v) -}}policy/v1beta1
{{- end -}}
{{- end }}
{{- define "todo-chatbot.hpaApiVersion" -}}
{{- $v := .Capabilities.KubeVersion.Version -}}
{{- if and (.Capabilities.APIVersions.Has "autoscaling/v2") (semverCompare ">=1.23-0" $v) -}}autoscaling/v2
{{- else if and (.Capabilities.APIVersions.Has "autoscaling/v2beta2") (semverCompare ">=1.12-0 <1.26-0" $v) -}}autoscaling/v2beta2
{{- end -}}
{{- end }}
{{- define "todo-chatbot.hasPDB" -}}
{{- if include "todo-chatbot.pdbApiVersion" . -}}true{{- end -}}
{{- end }}
{{- define "todo-chatbot.hasHPA" -}}
{{- if include "todo-chatbot.hpaApiVersion" . -}}true{{- end -}}
{{- end }}

{{/*
Ingress (issue 23, item 3): networking.k8s.io/v1 Ingress is GA from 1.19. Its TLS
Secret: the one named (tls.mode=secret), else <fullname>-ingress-tls (made by
`inv deploy` for self-signed, by cert-manager for cert-manager).
*/}}
{{- define "todo-chatbot.hasIngress" -}}
{{- if and (.Capabilities.APIVersions.Has "networking.k8s.io/v1") (semverCompare ">=1.19-0" .Capabilities.KubeVersion.Version) -}}true{{- end -}}
{{- end }}
{{- define "todo-chatbot.ingressTlsSecretName" -}}
{{- if eq .Values.ingress.tls.mode "secret" -}}
{{- .Values.ingress.tls.secretName -}}
{{- else -}}
{{- (include "todo-chatbot.names" . | fromYaml).ingressTls -}}
{{- end -}}
{{- end }}

{{/*
The restricted Pod Security contexts.
*/}}
{{- define "todo-chatbot.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid | default 10001 }}
runAsGroup: {{ .uid | default 10001 }}
fsGroup: {{ .uid | default 10001 }}
seccompProfile:
  type: RuntimeDefault
{{- end }}
{{- define "todo-chatbot.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
{{- end }}

{{/*
Egress rules (list items) shared by the NetworkPolicies.
DNS: port 53 to any address, because where the cluster's resolver runs varies
(CoreDNS pods on minikube, a node-local cache, dnsmasq on the node).
*/}}
{{- define "todo-chatbot.dnsEgress" -}}
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{- end }}

{{/*
The database: the bundled PostgreSQL's pods on 5432, or the external
database's port (database.externalPort, `inv deploy` takes it from
DATABASE_URL) on any address, because a NetworkPolicy cannot name a host.
*/}}
{{- define "todo-chatbot.databaseEgress" -}}
{{- if eq .Values.database.mode "bundled" -}}
- to:
    - podSelector:
        matchLabels:
          {{- include "todo-chatbot.selectorLabels" (dict "ctx" . "component" "database") | nindent 10 }}
  ports:
    - port: 5432
      protocol: TCP
{{- else -}}
- ports:
    - port: {{ .Values.database.externalPort }}
      protocol: TCP
{{- end }}
{{- end }}

{{/*
The TCP port of the LLM endpoint the backend calls, or "" for the offline
agent: the port in config.openaiBaseUrl, else 443 (https, and api.openai.com
when no base URL is set) or 80 (http).
*/}}
{{- define "todo-chatbot.llmPort" -}}
{{- if ne .Values.config.llmProvider "offline" -}}
{{- $url := urlParse (.Values.config.openaiBaseUrl | default "https://api.openai.com/v1") -}}
{{- $port := regexFind "[0-9]+$" (regexFind ":[0-9]+$" $url.host) -}}
{{- $port | default (eq $url.scheme "http" | ternary "80" "443") -}}
{{- end -}}
{{- end }}

{{/*
Refuses values whose backend can open more PostgreSQL connections than the bundled
database allows (todo_deploy/connection_budget.py is the same arithmetic, with the
workflow's setting names): each pod 2 x dbPoolSize + 1, twice the pods during a rollout
(maxSurge 100%), the most pods the HPA may make when it is on, + 5 (the migration, a
script, PostgreSQL's 3 reserved connections).
*/}}
{{- define "todo-chatbot.connectionBudget" -}}
{{- if eq .Values.database.mode "bundled" -}}
{{- $replicas := int .Values.backend.replicaCount -}}
{{- if .Values.backend.autoscaling.enabled -}}
{{- $replicas = max $replicas (int .Values.backend.autoscaling.maxReplicas) -}}
{{- end -}}
{{- $perPod := add1 (mul 2 (int .Values.config.dbPoolSize)) -}}
{{- $needed := add (mul 2 $replicas $perPod) 5 -}}
{{- if gt $needed (int .Values.database.maxConnections) -}}
{{- fail (printf "the backend can open %d PostgreSQL connections (%d pods during a rollout x %d each, + 5), over database.maxConnections=%d: lower backend.replicaCount (or autoscaling.maxReplicas) or config.dbPoolSize, or raise database.maxConnections" $needed (mul 2 $replicas) $perPod (int .Values.database.maxConnections)) -}}
{{- end -}}
{{- end -}}
{{- end }}

{{/*
Dev mode (values.dev.enabled), for the backend and frontend pods: the app's code on a
writable emptyDir that an initContainer seeds with the image's /opt/app (read-only root
filesystem kept), served by todo_serving.devloop (which swaps in synced code, devsync.py).
Usage: include "todo-chatbot.devSeed" (dict "image" .Values.backend.image "resources" .Values.backend.resources)
*/}}
{{- define "todo-chatbot.devSeed" -}}
- name: seed-code
  image: {{ include "todo-chatbot.image" .image | quote }}
  imagePullPolicy: {{ .image.pullPolicy | default "IfNotPresent" }}
  # What /opt/app holds, copied into /seed (not /seed itself: copying a directory's mode and times onto
  # the volume's root, which this user does not own, is refused).
  command:
    - /opt/venv/bin/python
    - -c
    - |
      import os, shutil
      for name in os.listdir("/opt/app"):
          source, target = os.path.join("/opt/app", name), os.path.join("/seed", name)
          if os.path.isdir(source):
              shutil.copytree(source, target, dirs_exist_ok=True)
          else:
              shutil.copy2(source, target)
  resources:
    {{- toYaml .resources | nindent 4 }}
  securityContext:
    {{- include "todo-chatbot.containerSecurityContext" . | nindent 4 }}
  volumeMounts:
    - name: dev-code
      mountPath: /seed
{{- end }}
{{- define "todo-chatbot.devVolume" -}}
- name: dev-code
  emptyDir:
    sizeLimit: 64Mi
{{- end }}
