{{/* Names, labels and the wiring every workload shares. */}}

{{- define "shoal.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "shoal.fullname" -}}
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

{{- define "shoal.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object carries. */}}
{{- define "shoal.labels" -}}
helm.sh/chart: {{ include "shoal.chart" . }}
app.kubernetes.io/part-of: {{ include "shoal.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector of one component (a service, redis or minio) of this release. */}}
{{- define "shoal.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shoal.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The five services: gRPC and Prometheus ports, and the gRPC service name readiness checks. */}}
{{- define "shoal.ports" -}}
ingest: {grpc: 50051, metrics: 9461, service: shoal.v1.IngestService}
versioning: {grpc: 50052, metrics: 9462, service: shoal.v1.VersioningService}
asset: {grpc: 50053, metrics: 9463, service: shoal.v1.AssetService}
metrics: {grpc: 50054, metrics: 9464, service: shoal.v1.MetricsService}
embedding: {grpc: 50055, metrics: 9465, service: shoal.v1.EmbeddingService}
{{- end }}

{{- define "shoal.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "shoal.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding the generated or given credentials. */}}
{{- define "shoal.secretName" -}}
{{- include "shoal.fullname" . }}
{{- end }}

{{- define "shoal.redisHost" -}}
{{- printf "%s-redis" (include "shoal.fullname" .) }}
{{- end }}

{{- define "shoal.minioHost" -}}
{{- printf "%s-minio" (include "shoal.fullname" .) }}
{{- end }}

{{/* Where the services reach S3. */}}
{{- define "shoal.s3Endpoint" -}}
{{- if .Values.minio.enabled }}
{{- printf "http://%s:9000" (include "shoal.minioHost" .) }}
{{- else }}
{{- required "objectStore.endpoint is required when minio.enabled is false" .Values.objectStore.endpoint }}
{{- end }}
{{- end }}

{{/* Where clients reach S3, for presigned URLs. */}}
{{- define "shoal.s3PublicEndpoint" -}}
{{- if .Values.objectStore.publicEndpoint }}
{{- .Values.objectStore.publicEndpoint }}
{{- else if and .Values.minio.enabled .Values.minio.ingress.enabled }}
{{- printf "%s://%s" (ternary "https" "http" (gt (len .Values.minio.ingress.tls) 0)) (required "minio.ingress.host is required when minio.ingress.enabled" .Values.minio.ingress.host) }}
{{- end }}
{{- end }}

{{- define "shoal.storeUrl" -}}
{{- $prefix := trimAll "/" .Values.objectStore.prefix }}
{{- if $prefix }}
{{- printf "s3://%s/%s" .Values.objectStore.bucket $prefix }}
{{- else }}
{{- printf "s3://%s" .Values.objectStore.bucket }}
{{- end }}
{{- end }}

{{/* Secret references: (secret name, key) of each credential. */}}
{{- define "shoal.adminKeyRef" -}}
name: {{ default (include "shoal.secretName" .) .Values.auth.existingSecret }}
key: admin-api-key
{{- end }}

{{- define "shoal.redisUrlRef" -}}
name: {{ ternary (include "shoal.secretName" .) (default (include "shoal.secretName" .) .Values.redis.existingSecret) .Values.redis.enabled }}
key: redis-url
{{- end }}

{{- define "shoal.s3Ref" -}}
name: {{ default (include "shoal.secretName" .) .Values.objectStore.existingSecret }}
{{- end }}

{{/*
A value kept across upgrades: the given one, else the one already in the release's Secret, else a new random one.
Arguments: root, key (in the Secret), given (value from values.yaml), length.
*/}}
{{- define "shoal.keptSecret" -}}
{{- if .given }}
{{- .given }}
{{- else }}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace (include "shoal.secretName" .root) }}
{{- if and $existing (hasKey $existing.data .key) }}
{{- index $existing.data .key | b64dec }}
{{- else }}
{{- randAlphaNum .length }}
{{- end }}
{{- end }}
{{- end }}

{{/* Image of a service: the CUDA tag for the embedding service on a GPU. */}}
{{- define "shoal.image" -}}
{{- $tag := default .root.Chart.AppVersion .root.Values.image.tag }}
{{- if .gpu }}
{{- $tag = default (printf "%s-gpu" $tag) .root.Values.image.gpuTag }}
{{- end }}
{{- printf "%s:%s" .root.Values.image.repository $tag }}
{{- end }}
