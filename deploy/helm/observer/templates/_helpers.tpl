{{/*
Names and labels shared by every template.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "observer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects: fullnameOverride, else the release name when it already
contains the chart name (a release called "observer" makes objects called "observer"), else
release-chart. Truncated to the 63 characters of a DNS label.
*/}}
{{- define "observer.fullname" -}}
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

{{/* chart-version, for the helm.sh/chart label. */}}
{{- define "observer.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The labels that select the pods: never change them in an upgrade (selectors are immutable). */}}
{{- define "observer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "observer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "observer.labels" -}}
helm.sh/chart: {{ include "observer.chart" . }}
{{ include "observer.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: node-agent
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The service account the pods run as. */}}
{{- define "observer.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "observer.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name must name an existing service account when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag, or repository@digest when a digest is given. */}}
{{- define "observer.image" -}}
{{- $repository := required "image.repository is required" .Values.image.repository }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag | toString) }}
{{- end }}
{{- end }}

{{/* The ConfigMap of policy manifests (policy.source configMap). */}}
{{- define "observer.policyConfigMap" -}}
{{- default (printf "%s-policy" (include "observer.fullname" .)) .Values.policy.configMap.name }}
{{- end }}

{{/* Fails the render on values the observer could not run with. */}}
{{- define "observer.validate" -}}
{{- if not (has .Values.policy.source (list "kubernetes" "configMap")) }}
{{- fail (printf "policy.source must be kubernetes or configMap, not %q" (toString .Values.policy.source)) }}
{{- end }}
{{- if and (eq .Values.policy.source "configMap") (not .Values.policy.configMap.name) (not .Values.policy.configMap.manifests) }}
{{- fail "policy.source configMap needs policy.configMap.name (an existing ConfigMap) or policy.configMap.manifests" }}
{{- end }}
{{- if not (has (toString .Values.output) (list "json" "table")) }}
{{- fail (printf "output must be json or table, not %q" (toString .Values.output)) }}
{{- end }}
{{- if and .Values.otlp.protocol (not (has .Values.otlp.protocol (list "grpc" "http/protobuf"))) }}
{{- fail (printf "otlp.protocol must be grpc or http/protobuf, not %q" .Values.otlp.protocol) }}
{{- end }}
{{- if and .Values.pin.enabled (or (not (regexMatch "^[A-Za-z0-9_][A-Za-z0-9._-]*$" (toString .Values.pin.dir))) (eq (toString .Values.pin.dir) "..")) }}
{{- fail (printf "pin.dir must be one directory name under the host's bpffs, not %q" (toString .Values.pin.dir)) }}
{{- end }}
{{- $port := int .Values.metrics.port }}
{{- if or (lt $port 1) (gt $port 65535) }}
{{- fail (printf "metrics.port must be 1-65535, not %v" .Values.metrics.port) }}
{{- end }}
{{- end }}
