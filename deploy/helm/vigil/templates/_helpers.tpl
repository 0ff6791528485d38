{{/* Names, labels and the per-service view of values that every template shares. */}}

{{- define "vigil.chart" -}}
{{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-<service>: the name of every resource a service owns (also its DNS name). */}}
{{- define "vigil.serviceName" -}}
{{ printf "%s-%s" .root.Release.Name .name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "vigil.labels" -}}
helm.sh/chart: {{ include "vigil.chart" . }}
app.kubernetes.io/name: vigil
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vigil
{{- end }}

{{/* Selector labels of one service's pods (what NetworkPolicies name as peers). */}}
{{- define "vigil.selectorLabels" -}}
app.kubernetes.io/name: vigil
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{- define "vigil.serviceLabels" -}}
{{ include "vigil.labels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{/* A service's values with serviceDefaults merged under them. */}}
{{- define "vigil.svcValues" -}}
{{- $svc := index .root.Values.services .name -}}
{{- toYaml (mergeOverwrite (deepCopy .root.Values.serviceDefaults) (deepCopy $svc)) -}}
{{- end }}

{{- define "vigil.image" -}}
{{- $svc := index .root.Values.services .name -}}
{{- if $svc.image -}}
{{ $svc.image }}
{{- else -}}
{{ printf "%s/%s%s:%s" .root.Values.image.registry .root.Values.image.prefix .name (default .root.Chart.AppVersion .root.Values.image.tag) }}
{{- end -}}
{{- end }}

{{/* The environment-variable prefix of a service's settings: REGISTRY_, INGEST_, ... */}}
{{- define "vigil.envPrefix" -}}
{{ printf "%s_" (upper .) }}
{{- end }}

{{/* Services that call .name (the inverse of services.<caller>.calls), as a YAML list. */}}
{{- define "vigil.callers" -}}
{{- $callers := list -}}
{{- range $caller, $svc := .root.Values.services -}}
{{- if and $svc.enabled (has $.name $svc.calls) -}}
{{- $callers = append $callers $caller -}}
{{- end -}}
{{- end -}}
{{- toYaml $callers -}}
{{- end }}

{{/*
"true" when each service logs in to Kafka as its own Strimzi KafkaUser (SCRAM-SHA-512), else empty.
SCRAM users need a SASL listener, and a SASL protocol needs the users' credentials: either half alone
fails the render instead of pods that cannot reach the broker.
*/}}
{{- define "vigil.kafkaUsers" -}}
{{- $s := .Values.kafka.strimzi -}}
{{- $sasl := hasPrefix "SASL_" .Values.common.kafkaSecurityProtocol -}}
{{- $users := and $s.enabled $s.users -}}
{{- if and $users (not $sasl) -}}
{{- fail "kafka.strimzi.users needs common.kafkaSecurityProtocol SASL_SSL or SASL_PLAINTEXT (SCRAM logins)" -}}
{{- end -}}
{{- if and $sasl (not $users) -}}
{{- fail (printf "common.kafkaSecurityProtocol %s needs kafka.strimzi.enabled and kafka.strimzi.users (each service's SCRAM credentials)" .Values.common.kafkaSecurityProtocol) -}}
{{- end -}}
{{- if $users }}true{{ end -}}
{{- end -}}
