{{/*
Expand the name of the chart.
*/}}
{{- define "todo-chatbot.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: the prefix of every object name. Truncated at 63-10
characters, leaving room for the longest suffix ("-frontend", "-migrate-xxxxxxxx"
is cut further below). If the release name contains the chart name it is used
as is.
*/}}
{{- define "todo-chatbot.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 45 | trimSuffix "-" }}
{{- end }}
{{- end }}
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
{{- $names := dict "backend" "todo-backend" "frontend" "todo-frontend" "database" "postgresql" "migration" "todo-migrate" "test" "todo-test" "config" "todo-chatbot" "network" "todo-chatbot" -}}
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
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- if .ctx.Chart.AppVersion }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
{{- end }}
{{- end }}

{{/*
The ServiceAccount name of a component. Usage as selectorLabels.
*/}}
{{- define "todo-chatbot.serviceAccountName" -}}
{{- $suffix := dict "backend" "backend" "frontend" "frontend" "database" "postgres" "migration" "backend" "test" "backend" -}}
{{- printf "%s-%s" (include "todo-chatbot.fullname" .ctx) (get $suffix .component) -}}
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
The migration Job's name: <fullname>-migrate-<first 8 chars of the backend tag>.
*/}}
{{- define "todo-chatbot.migrationJobName" -}}
{{- $tag := regexReplaceAll "[^a-z0-9]" (lower (.Values.backend.image.tag | default "0")) "" | trunc 12 | default "0" -}}
{{- printf "%s-migrate-%s" (include "todo-chatbot.fullname" .) $tag -}}
{{- end }}

{{/*
Secret names: the existing Secret when set, else the one the chart creates.
*/}}
{{- define "todo-chatbot.backendSecretName" -}}
{{- .Values.secrets.existingSecret.backend | default (printf "%s-backend" (include "todo-chatbot.fullname" .)) -}}
{{- end }}
{{- define "todo-chatbot.frontendSecretName" -}}
{{- .Values.secrets.existingSecret.frontend | default (printf "%s-frontend" (include "todo-chatbot.fullname" .)) -}}
{{- end }}
{{- define "todo-chatbot.postgresSecretName" -}}
{{- .Values.secrets.existingSecret.postgres | default (printf "%s-postgres" (include "todo-chatbot.fullname" .)) -}}
{{- end }}

{{/*
checksum/secret: the given checksum of the existing Secrets, else the hash of
the Secrets this chart renders.
*/}}
{{- define "todo-chatbot.secretChecksum" -}}
{{- .Values.secrets.secretChecksum | default (include (print .Template.BasePath "/secrets.yaml") . | sha256sum) -}}
{{- end }}

{{/*
Has the cluster (or `helm template --api-versions/--kube-version`) this API?
policy/v1 PodDisruptionBudget is GA from 1.21, autoscaling/v2 HPA from 1.23.
*/}}
{{- define "todo-chatbot.hasPDB" -}}
{{- if and (.Capabilities.APIVersions.Has "policy/v1") (semverCompare ">=1.21-0" .Capabilities.KubeVersion.Version) -}}true{{- end -}}
{{- end }}
{{- define "todo-chatbot.hasHPA" -}}
{{- if and (.Capabilities.APIVersions.Has "autoscaling/v2") (semverCompare ">=1.23-0" .Capabilities.KubeVersion.Version) -}}true{{- end -}}
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
