{{/* Name of every object: the release name when it contains the chart name, else release-chart. */}}
{{- define "undying-proxy.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object (the kustomize manifests carry the first one only). */}}
{{- define "undying-proxy.labels" -}}
app.kubernetes.io/name: undying-proxy
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The pods' selector: `app: <fullname>`, the Go operator's `app: undying-proxy` by default. */}}
{{- define "undying-proxy.selectorLabels" -}}
app: {{ include "undying-proxy.fullname" . }}
{{- end -}}

{{/* True ("true") in DaemonSet mode; fails on an unknown mode. */}}
{{- define "undying-proxy.daemonset" -}}
{{- if not (has .Values.mode (list "deployment" "daemonset")) -}}
{{- fail (printf "mode: %q is neither deployment nor daemonset" .Values.mode) -}}
{{- end -}}
{{- if eq .Values.mode "daemonset" }}true{{ end -}}
{{- end -}}

{{/* Name of the managed Service of a protocol ("tcp"/"udp"), empty when it is not managed. */}}
{{- define "undying-proxy.managedService" -}}
{{- $service := index .root.Values.services .protocol -}}
{{- if and (not (include "undying-proxy.daemonset" .root)) $service.enabled -}}
{{- printf "%s-%s" (include "undying-proxy.fullname" .root) .protocol -}}
{{- end -}}
{{- end -}}

{{/* The watched namespaces other than the release's own ("*" stays as it is). */}}
{{- define "undying-proxy.otherWatchedNamespaces" -}}
{{- without .Values.watchNamespaces .Release.Namespace | toJson -}}
{{- end -}}

{{/*
"true" when /metrics is served over HTTPS (.Values.metrics.secure, else the program's default in
operator mode: on), or with token review ("authed", default on too). Change the defaults here when
the program's change.
*/}}
{{- define "undying-proxy.metricsSecure" -}}
{{- $default := true -}}
{{- if (kindIs "invalid" .Values.metrics.secure) | ternary $default .Values.metrics.secure }}true{{ end -}}
{{- end -}}
{{- define "undying-proxy.metricsAuthed" -}}
{{- $default := true -}}
{{- if (kindIs "invalid" .Values.metrics.authed) | ternary $default .Values.metrics.authed }}true{{ end -}}
{{- end -}}
