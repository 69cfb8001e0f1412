{{/* Chart name (nameOverride wins). */}}
{{- define "kube-ocr.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: fullnameOverride, else the release name when it contains the chart name, else
<release>-<chart>. Kept to 54 characters so "<fullname>-operator" fits in 63.
*/}}
{{- define "kube-ocr.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 54 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 54 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 54 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Name of the operator's Deployment, Service, ClusterRole and friends. */}}
{{- define "kube-ocr.operatorName" -}}
{{- printf "%s-operator" (include "kube-ocr.fullname" .) }}
{{- end }}

{{- define "kube-ocr.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kube-ocr.operatorName" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kube-ocr.leaseName" -}}
{{- default (include "kube-ocr.operatorName" .) .Values.operator.leaderElection.leaseName }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "kube-ocr.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "kube-ocr.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kube-ocr
{{- end }}

{{/* Labels that select the operator's pods (never change them on upgrade). */}}
{{- define "kube-ocr.operatorSelectorLabels" -}}
app.kubernetes.io/name: {{ include "kube-ocr.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "kube-ocr.operatorLabels" -}}
{{ include "kube-ocr.labels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/* The operator image: repository@digest, else repository:tag (default appVersion). */}}
{{- define "kube-ocr.operatorImage" -}}
{{- $image := .Values.operator.image }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default .Chart.AppVersion $image.tag) }}
{{- end }}
{{- end }}

{{/* True when the cluster serves the Prometheus Operator's API. */}}
{{- define "kube-ocr.hasMonitoringAPI" -}}
{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" }}true{{ end }}
{{- end }}
