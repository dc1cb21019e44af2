{{- define "ferry.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ferry.labels" -}}
app.kubernetes.io/name: ferry
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "ferry.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "ferry.operatorAccount" -}}{{ include "ferry.fullname" . }}-operator{{- end -}}
{{- define "ferry.syncAccount" -}}{{ include "ferry.fullname" . }}-sync{{- end -}}
{{- define "ferry.stateClaim" -}}{{ include "ferry.fullname" . }}-state{{- end -}}

{{- define "ferry.gateway" -}}{{ include "ferry.fullname" . }}-gateway{{- end -}}
{{- define "ferry.gatewayUrl" -}}
https://{{ include "ferry.gateway" . }}.{{ .Release.Namespace }}.svc:{{ .Values.gateway.service.port }}
{{- end -}}
