{{- define "portico.fullname" -}}
{{- printf "%s" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "portico.labels" -}}
app.kubernetes.io/name: portico
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "portico.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- /* The Lease the allocating replicas (lb-controller, gateway --allocate) elect on. */}}
{{- define "portico.leaseName" -}}
{{ include "portico.fullname" . }}-lb-controller
{{- end -}}

{{- /* Pod securityContext every component shares. */}}
{{- define "portico.podSecurityContext" -}}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- /* The downward API every component reads: its Pod (Lease identity, Event reporter), its
namespace (the Lease's), its node and its Pod IP (the admin API's address). */}}
{{- define "portico.podEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
- name: POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
{{- end -}}
