{{/* The release's base name. */}}
{{- define "mortar.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 55 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 55 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "mortar.peers" -}}{{ include "mortar.fullname" . }}-peers{{- end -}}

{{/* DNS suffix of the pods: <pod>.<this>. */}}
{{- define "mortar.peersDomain" -}}
{{ include "mortar.peers" . }}.{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}
{{- end -}}

{{/* Selector labels: never anything that changes between versions (the selector is immutable). */}}
{{- define "mortar.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "mortar.labels" -}}
{{ include "mortar.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The fixed seed list: ids 1..seeds at ordinals 0..seeds-1, whatever replicas is. */}}
{{- define "mortar.initialCluster" -}}
{{- $entries := list -}}
{{- range $i := until (int .Values.seeds) -}}
{{- $entries = append $entries (printf "%d=%s-%d.%s:%d" (add $i 1) (include "mortar.fullname" $) $i (include "mortar.peersDomain" $) (int $.Values.ports.grpc)) -}}
{{- end -}}
{{- join "," $entries -}}
{{- end -}}

{{- define "mortar.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "mortar.tlsSecret" -}}
{{- if .Values.tls.certManager.enabled -}}{{ include "mortar.fullname" . }}-tls{{- else -}}{{ .Values.tls.secretName }}{{- end -}}
{{- end -}}

{{/* Environment shared by the nodes and the test pod: TLS and the secrets, as files. */}}
{{- define "mortar.secretEnv" -}}
{{- if .Values.tls.enabled }}
- name: MORTAR_CA
  value: /etc/mortar/tls/ca.crt
{{- end }}
{{- if .Values.existingSecret }}
- name: MORTAR_TOKEN_FILE
  value: /etc/mortar/secrets/admin-token
{{- end }}
{{- end -}}

{{- define "mortar.secretVolumes" -}}
{{- if .Values.tls.enabled }}
- name: tls
  secret:
    secretName: {{ include "mortar.tlsSecret" . }}
    defaultMode: 0440
{{- end }}
{{- if .Values.existingSecret }}
- name: secrets
  secret:
    secretName: {{ .Values.existingSecret }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{- define "mortar.secretMounts" -}}
{{- if .Values.tls.enabled }}
- name: tls
  mountPath: /etc/mortar/tls
  readOnly: true
{{- end }}
{{- if .Values.existingSecret }}
- name: secrets
  mountPath: /etc/mortar/secrets
  readOnly: true
{{- end }}
{{- end -}}

{{- define "mortar.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "mortar.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}
