{{/* The chart's short name. */}}
{{- define "projector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name, used for every object the chart creates. */}}
{{- define "projector.fullname" -}}
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

{{/* Labels on every object. */}}
{{- define "projector.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "projector.selectorLabels" . }}
app.kubernetes.io/version: {{ include "projector.imageTag" . | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the daemon's pods. */}}
{{- define "projector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "projector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "projector.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "projector.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "projector.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{- define "projector.image" -}}
{{- printf "%s:%s" .Values.image.repository (include "projector.imageTag" .) }}
{{- end }}

{{/* The ConfigMap holding the projections YAML. */}}
{{- define "projector.configMapName" -}}
{{- default (printf "%s-projections" (include "projector.fullname" .)) .Values.projections.existingConfigMap }}
{{- end }}

{{/* The Secret the chart creates for connection strings given as values. */}}
{{- define "projector.secretName" -}}
{{- printf "%s-connections" (include "projector.fullname" .) }}
{{- end }}

{{- define "projector.kurrentdbSecretName" -}}
{{- default (include "projector.secretName" .) .Values.kurrentdb.existingSecret }}
{{- end }}

{{- define "projector.kurrentdbSecretKey" -}}
{{- if .Values.kurrentdb.existingSecret }}{{ .Values.kurrentdb.existingSecretKey }}{{ else }}kurrentdb-uri{{ end }}
{{- end }}

{{- define "projector.databaseSecretName" -}}
{{- default (include "projector.secretName" .) .Values.database.existingSecret }}
{{- end }}

{{- define "projector.databaseSecretKey" -}}
{{- if .Values.database.existingSecret }}{{ .Values.database.existingSecretKey }}{{ else }}database-url{{ end }}
{{- end }}

{{/* Whether the chart creates the connections Secret at all. */}}
{{- define "projector.createSecret" -}}
{{- if or (not .Values.kurrentdb.existingSecret) (not .Values.database.existingSecret) (and .Values.kurrentdb.rootCertificates (not .Values.kurrentdb.rootCertificatesSecret)) }}true{{ end }}
{{- end }}

{{- define "projector.rootCertificatesEnabled" -}}
{{- if or .Values.kurrentdb.rootCertificates .Values.kurrentdb.rootCertificatesSecret }}true{{ end }}
{{- end }}

{{/* The Secret holding the admin token of the commands (resume, skip, reset): the existing one,
or the one the chart creates. */}}
{{- define "projector.adminTokenSecretName" -}}
{{- default (printf "%s-admin-token" (include "projector.fullname" .)) .Values.adminToken.existingSecret }}
{{- end }}

{{- define "projector.adminTokenSecretKey" -}}
{{- if .Values.adminToken.existingSecret }}{{ .Values.adminToken.existingSecretKey }}{{ else }}token{{ end }}
{{- end }}

{{/* Where the daemon container mounts the admin token, and the file PROJECTOR_ADMIN_TOKEN_FILE names. */}}
{{- define "projector.adminTokenDir" -}}
/etc/projector/admin
{{- end }}

{{- define "projector.terminationGracePeriodSeconds" -}}
{{- $drain := int .Values.drainTimeoutSeconds }}
{{- $grace := int .Values.terminationGracePeriodSeconds }}
{{- if eq $grace 0 }}{{ $grace = add $drain 15 }}{{ end }}
{{- if le $grace $drain }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be larger than drainTimeoutSeconds (%d), or the pod is killed mid-drain" $grace $drain) }}
{{- end }}
{{- $grace }}
{{- end }}

{{/* Checks that need more than the values schema. */}}
{{- define "projector.validate" -}}
{{- if and (not .Values.kurrentdb.existingSecret) (not .Values.kurrentdb.uri) }}
{{- fail "kurrentdb: set uri or existingSecret" }}
{{- end }}
{{- if and (not .Values.database.existingSecret) (not .Values.database.url) }}
{{- fail "database: set url or existingSecret" }}
{{- end }}
{{- if and (not .Values.projections.existingConfigMap) (not .Values.projections.config) }}
{{- fail "projections: set config (the projections YAML) or existingConfigMap" }}
{{- end }}
{{- if and .Values.kurrentdb.rootCertificates .Values.kurrentdb.rootCertificatesSecret }}
{{- fail "kurrentdb: set rootCertificates or rootCertificatesSecret, not both" }}
{{- end }}
{{- if and .Values.adminToken.value .Values.adminToken.existingSecret }}
{{- fail "adminToken: set value or existingSecret, not both (the daemon takes the token one way)" }}
{{- end }}
{{- if and .Values.adminToken.value (not (trim .Values.adminToken.value)) }}
{{- fail "adminToken.value is only whitespace; give the token, or leave it empty for a random one" }}
{{- end }}
{{- range .Values.extraEnv }}
{{- if has .name (list "PROJECTOR_ADMIN_TOKEN" "PROJECTOR_ADMIN_TOKEN_FILE") }}
{{- fail (printf "extraEnv sets %s although adminToken gives the admin token; the daemon refuses both (remove it from extraEnv)" .name) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The environment shared by the daemon and the migrate init container. */}}
{{- define "projector.env" -}}
- name: KURRENTDB_URI
  valueFrom:
    secretKeyRef:
      name: {{ include "projector.kurrentdbSecretName" . }}
      key: {{ include "projector.kurrentdbSecretKey" . }}
{{- if include "projector.rootCertificatesEnabled" . }}
- name: KURRENTDB_ROOT_CERTIFICATES
  value: /etc/projector/certs/ca.crt
{{- end }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "projector.databaseSecretName" . }}
      key: {{ include "projector.databaseSecretKey" . }}
- name: PROJECTOR_CONFIG
  value: /etc/projector/config/{{ .Values.projections.key }}
- name: PROJECTOR_HTTP_ADDR
  value: {{ printf ":%d" (int .Values.http.port) | quote }}
- name: PROJECTOR_LOG_LEVEL
  value: {{ .Values.log.level | quote }}
- name: PROJECTOR_LOG_FORMAT
  value: {{ .Values.log.format | quote }}
- name: PROJECTOR_DRAIN_TIMEOUT
  value: {{ printf "%ds" (int .Values.drainTimeoutSeconds) | quote }}
- name: PROJECTOR_MAX_WAITS
  value: {{ int .Values.maxWaits | quote }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The volume mounts shared by the daemon and the migrate init container. */}}
{{- define "projector.volumeMounts" -}}
- name: config
  mountPath: /etc/projector/config
  readOnly: true
{{- if include "projector.rootCertificatesEnabled" . }}
- name: certs
  mountPath: /etc/projector/certs
  readOnly: true
{{- end }}
- name: tmp
  mountPath: /tmp
{{- end }}
