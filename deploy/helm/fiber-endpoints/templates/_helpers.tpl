{{- define "fe.stack" -}}
{{- $s := index .Values.stacks .Values.stack -}}
{{- if not $s -}}{{- fail (printf "stack %q is not one of %s" .Values.stack (keys .Values.stacks | sortAlpha | join ", ")) -}}{{- end -}}
{{- toYaml $s -}}
{{- end -}}

{{- define "fe.name" -}}
{{- printf "%s-%s" .Release.Name .Values.stack | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "fe.labels" -}}
app.kubernetes.io/name: fiber-endpoints
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: {{ .Values.stack }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "fe.selector" -}}
app.kubernetes.io/name: fiber-endpoints
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: {{ .Values.stack }}
{{- end -}}
