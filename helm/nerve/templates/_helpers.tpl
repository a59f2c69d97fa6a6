{{/* Names, labels and the environment every part shares. */}}

{{- define "nerve.fullname" -}}
{{- if contains "nerve" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-nerve" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "nerve.labels" -}}
app.kubernetes.io/name: nerve
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The selector of one part: (dict "root" $ "role" "ingress") */}}
{{- define "nerve.selector" -}}
app.kubernetes.io/name: nerve
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .role }}
{{- end -}}

{{- define "nerve.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "nerve.tokenSecret" -}}
{{ .Values.token.existingSecret | default (printf "%s-token" (include "nerve.fullname" .)) }}
{{- end -}}

{{- define "nerve.controlHost" -}}
{{ include "nerve.fullname" . }}-control.{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}
{{- end -}}

{{- define "nerve.ingressHost" -}}
{{ include "nerve.fullname" . }}-ingress.{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}
{{- end -}}

{{/* The roles, in the order the templates render them. */}}
{{- define "nerve.roles" -}}
control ingress dispatcher sources
{{- end -}}

{{/* The operator's store: kubernetes (with leader election, webhooks) or sqlite (one replica). */}}
{{- define "nerve.operator" -}}
{{- if eq .Values.control.store "kubernetes" }}true{{ else if eq .Values.control.store "sqlite" }}{{ else }}{{ fail (printf "control.store must be kubernetes or sqlite, not %q" .Values.control.store) }}{{ end -}}
{{- end -}}

{{- define "nerve.webhooks" -}}
{{- if and (include "nerve.operator" .) .Values.webhooks.enabled }}true{{ end -}}
{{- end -}}

{{- define "nerve.webhookSecret" -}}
{{ .Values.webhooks.certSecret | default (printf "%s-webhook-tls" (include "nerve.fullname" .)) }}
{{- end -}}


{{- /* What ApiServerSources watch: sources.watch, or when it is empty this cluster's API server exactly when
control runs as the operator (the objects live there), else nothing. */}}
{{- define "nerve.sourcesWatch" -}}
{{ .Values.sources.watch | default (ternary "kubernetes" "none" (eq .Values.control.store "kubernetes")) }}
{{- end -}}
