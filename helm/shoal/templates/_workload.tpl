{{/*
One service of the suite: Deployment, Service, HorizontalPodAutoscaler and PodDisruptionBudget.
Arguments: root (the chart context), name (ingest, versioning, asset, metrics, embedding), svc (its values block).
*/}}
{{- define "shoal.workload" -}}
{{- $root := .root }}
{{- $name := .name }}
{{- $svc := .svc }}
{{- $port := get (include "shoal.ports" $root | fromYaml) $name }}
{{- $fullname := printf "%s-%s" (include "shoal.fullname" $root) $name }}
{{- $gpu := and (hasKey $svc "gpu") $svc.gpu.enabled }}
{{- $selector := dict "root" $root "component" $name }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "shoal.labels" $root | nindent 4 }}
    {{- include "shoal.selectorLabels" $selector | nindent 4 }}
spec:
  {{- if not $svc.autoscaling.enabled }}
  replicas: {{ $svc.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 1
  selector:
    matchLabels:
      {{- include "shoal.selectorLabels" $selector | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "shoal.labels" $root | nindent 8 }}
        {{- include "shoal.selectorLabels" $selector | nindent 8 }}
        {{- with $root.Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        # Settings and credentials changed by an upgrade roll the pods.
        checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
        checksum/secret: {{ include (print $root.Template.BasePath "/secret.yaml") $root | sha256sum }}
        {{- with $root.Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "shoal.serviceAccountName" $root }}
      automountServiceAccountToken: {{ $root.Values.serviceAccount.automountToken }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      terminationGracePeriodSeconds: {{ $root.Values.terminationGracePeriodSeconds }}
      containers:
        - name: {{ $name }}
          image: {{ include "shoal.image" (dict "root" $root "gpu" $gpu) }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command: ["shoal-{{ $name }}"]
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          ports:
            - name: grpc
              containerPort: {{ $port.grpc }}
              protocol: TCP
            - name: metrics
              containerPort: {{ $port.metrics }}
              protocol: TCP
          envFrom:
            - configMapRef:
                name: {{ include "shoal.fullname" $root }}
          env:
            - name: SHOAL_GRPC_PORT
              value: {{ $port.grpc | quote }}
            - name: SHOAL_METRICS_PORT
              value: {{ $port.metrics | quote }}
            - name: SHOAL_ADMIN_API_KEY
              valueFrom:
                secretKeyRef:
                  {{- include "shoal.adminKeyRef" $root | nindent 18 }}
            - name: SHOAL_REDIS_URL
              valueFrom:
                secretKeyRef:
                  {{- include "shoal.redisUrlRef" $root | nindent 18 }}
            - name: SHOAL_S3_ACCESS_KEY
              valueFrom:
                secretKeyRef:
                  {{- include "shoal.s3Ref" $root | nindent 18 }}
                  key: s3-access-key
            - name: SHOAL_S3_SECRET_KEY
              valueFrom:
                secretKeyRef:
                  {{- include "shoal.s3Ref" $root | nindent 18 }}
                  key: s3-secret-key
            {{- /* The service's own settings; its `env` block wins over these defaults. */}}
            {{- $env := dict "SHOAL_PROCESSES" (toString $svc.processes) }}
            {{- if eq $name "embedding" }}
            {{- $_ := set $env "SHOAL_EMBEDDING_DEVICE" (ternary "gpu" "auto" $gpu) }}
            {{- /* It saves selections as segments through the versioning service's Service. */}}
            {{- $versioning := get (include "shoal.ports" $root | fromYaml) "versioning" }}
            {{- $_ := set $env "SHOAL_VERSIONING_ADDRESS" (printf "%s-versioning:%v" (include "shoal.fullname" $root) $versioning.grpc) }}
            {{- end }}
            {{- range $key, $value := merge (deepCopy $svc.env) $env }}
            - name: {{ $key }}
              value: {{ $value | toString | quote }}
            {{- end }}
          # Kubernetes' native gRPC probes against grpc.health.v1: the overall status is SERVING while the process
          # runs (liveness); the service's own status is SERVING only while Redis and the object store answer
          # (readiness), so a pod that loses them stops receiving calls without being restarted.
          startupProbe:
            grpc:
              port: {{ $port.grpc }}
            periodSeconds: 2
            failureThreshold: 60
          livenessProbe:
            grpc:
              port: {{ $port.grpc }}
            periodSeconds: 10
            timeoutSeconds: 3
            failureThreshold: 3
          readinessProbe:
            grpc:
              port: {{ $port.grpc }}
              service: {{ $port.service }}
            periodSeconds: 5
            timeoutSeconds: 3
            failureThreshold: 2
          resources:
            {{- $resources := deepCopy $svc.resources }}
            {{- if $gpu }}
            {{- $limits := merge (dict $svc.gpu.resourceName $svc.gpu.count) (default dict $resources.limits) }}
            {{- $_ := set $resources "limits" $limits }}
            {{- end }}
            {{- toYaml $resources | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: {{ $root.Values.tmpSizeLimit }}
      {{- $nodeSelector := $svc.nodeSelector }}
      {{- $tolerations := $svc.tolerations }}
      {{- if $gpu }}
      {{- $nodeSelector = merge (deepCopy $svc.nodeSelector) $svc.gpu.nodeSelector }}
      {{- $tolerations = concat $svc.tolerations $svc.gpu.tolerations }}
      {{- end }}
      {{- with $nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- if $svc.affinity }}
      affinity:
        {{- toYaml $svc.affinity | nindent 8 }}
      {{- else }}
      # Replicas spread over nodes when they can.
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
            - weight: 100
              podAffinityTerm:
                topologyKey: kubernetes.io/hostname
                labelSelector:
                  matchLabels:
                    {{- include "shoal.selectorLabels" $selector | nindent 20 }}
      {{- end }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "shoal.labels" $root | nindent 4 }}
    {{- include "shoal.selectorLabels" $selector | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "shoal.selectorLabels" $selector | nindent 4 }}
  ports:
    - name: grpc
      port: {{ $port.grpc }}
      targetPort: grpc
      protocol: TCP
      appProtocol: grpc
    - name: metrics
      port: {{ $port.metrics }}
      targetPort: metrics
      protocol: TCP
      appProtocol: http
{{- if $svc.autoscaling.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "shoal.labels" $root | nindent 4 }}
    {{- include "shoal.selectorLabels" $selector | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $fullname }}
  minReplicas: {{ $svc.autoscaling.minReplicas }}
  maxReplicas: {{ $svc.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $svc.autoscaling.targetCPUUtilizationPercentage }}
    {{- with $svc.autoscaling.targetMemoryUtilizationPercentage }}
    - type: Resource
      resource:
        name: memory
        target:
          type: Utilization
          averageUtilization: {{ . }}
    {{- end }}
{{- end }}
{{- if $svc.podDisruptionBudget.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "shoal.labels" $root | nindent 4 }}
    {{- include "shoal.selectorLabels" $selector | nindent 4 }}
spec:
  maxUnavailable: {{ $svc.podDisruptionBudget.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "shoal.selectorLabels" $selector | nindent 6 }}
{{- end }}
{{- end }}
