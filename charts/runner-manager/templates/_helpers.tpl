{{- define "rm.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "rm.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "rm.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "rm.image" -}}
{{- $repo := .root.Values.image.repository -}}
{{- if .root.Values.image.registry -}}{{- $repo = printf "%s/%s" .root.Values.image.registry $repo -}}{{- end -}}
{{- printf "%s/%s:%s" $repo .binary (.root.Values.image.tag | default .root.Chart.AppVersion) -}}
{{- end -}}

{{- define "rm.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-secrets" (include "rm.fullname" .)) -}}
{{- end -}}

{{/* rm.bundledRedis is "true" when the chart runs its own (trial) Redis. */}}
{{- define "rm.bundledRedis" -}}
{{- if and .Values.redis.deploy (not .Values.redis.url) (not .Values.redis.existingSecret) (not .Values.config.redis) -}}true{{- end -}}
{{- end -}}

{{/* rm.redisSecret is the name of the Secret the chart makes for Redis. */}}
{{- define "rm.redisSecret" -}}
{{- printf "%s-redis" (include "rm.fullname" .) -}}
{{- end -}}

{{/*
rm.redisPassword: the bundled Redis's password, kept across upgrades (read
back from the Secret with lookup) or generated. Only without
redis.auth.existingSecret.
*/}}
{{- define "rm.redisPassword" -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "rm.redisSecret" .) -}}
{{- if and $existing $existing.data (hasKey $existing.data "redis-password") -}}
{{- index $existing.data "redis-password" | b64dec -}}
{{- else -}}
{{- randAlphaNum 32 -}}
{{- end -}}
{{- end -}}

{{/*
rm.redisEnv: RM_REDIS_URL (and RM_REDIS_PASSWORD with redis.auth.existingSecret)
of a runner-manager container, always from a Secret, never a plain value.
Nothing with config.redis (Sentinel fields): the main Secret carries the
passwords then.
*/}}
{{- define "rm.redisEnv" -}}
{{- if .Values.redis.existingSecret }}
- name: RM_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.existingSecret }}
      key: {{ .Values.redis.existingSecretKey }}
{{- else if or .Values.redis.url (include "rm.bundledRedis" .) }}
- name: RM_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "rm.redisSecret" . }}
      key: RM_REDIS_URL
{{- end }}
{{- if and (include "rm.bundledRedis" .) .Values.redis.auth.existingSecret }}
- name: RM_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.auth.existingSecret }}
      key: {{ .Values.redis.auth.existingSecretPasswordKey }}
{{- end }}
{{- end -}}

{{/*
rm.goMemLimitMiB: 90% of a memory quantity (Gi, Mi, Ki, G, M, k or bytes)
in MiB, or "" when the quantity is not one of those integer forms.
*/}}
{{- define "rm.goMemLimitMiB" -}}
{{- $q := toString . -}}
{{- $bytes := 0 -}}
{{- if regexMatch "^[0-9]+$" $q -}}
{{- $bytes = atoi $q -}}
{{- else -}}
{{- range $u := list (list "Gi" 1073741824) (list "Mi" 1048576) (list "Ki" 1024) (list "G" 1000000000) (list "M" 1000000) (list "k" 1000) -}}
{{- $n := trimSuffix (index $u 0) $q -}}
{{- if and (not $bytes) (hasSuffix (index $u 0) $q) (regexMatch "^[0-9]+$" $n) -}}
{{- $bytes = mul (atoi $n) (index $u 1) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if $bytes -}}{{ div (div (mul $bytes 9) 10) 1048576 }}{{- end -}}
{{- end -}}

{{/*
rm.deployment renders the Deployment of one component.
Arguments: root, component (ingress, scheduler, provisioner-docker, ...),
binary, values (the component's values), port, extraVolumes, extraMounts, runAsRoot.
*/}}
{{- define "rm.deployment" -}}
{{- $root := .root -}}
{{- $v := .values -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "rm.fullname" $root }}-{{ .component }}
  labels:
    {{- include "rm.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  {{- if not $v.autoscaling.enabled }}
  replicas: {{ $v.replicas }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "rm.selector" (dict "root" $root "component" .component) | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "rm.selector" (dict "root" $root "component" .component) | nindent 8 }}
        {{- with $root.Values.podLabels }}{{ toYaml . | nindent 8 }}{{ end }}
      annotations:
        checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
        {{- if not $root.Values.secrets.existingSecret }}
        checksum/secret: {{ include (print $root.Template.BasePath "/secret.yaml") $root | sha256sum }}
        {{- end }}
        {{- if or (include "rm.bundledRedis" $root) (and $root.Values.redis.url (not $root.Values.redis.existingSecret)) }}
        checksum/redis: {{ include (print $root.Template.BasePath "/redis-secret.yaml") $root | sha256sum }}
        {{- end }}
        {{- with $root.Values.podAnnotations }}{{ toYaml . | nindent 8 }}{{ end }}
    spec:
      serviceAccountName: {{ include "rm.fullname" $root }}-{{ .component }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets: {{ toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        runAsNonRoot: {{ not .runAsRoot }}
        runAsUser: {{ if .runAsRoot }}0{{ else }}65532{{ end }}
        runAsGroup: {{ if .runAsRoot }}0{{ else }}65532{{ end }}
        seccompProfile:
          type: RuntimeDefault
      terminationGracePeriodSeconds: 45
      containers:
        - name: {{ .component }}
          image: {{ include "rm.image" (dict "root" $root "binary" .binary) }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args: ["--config", "/etc/runner-manager/config.yaml"]
          env:
            - name: POD_NAME
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
            - name: RM_LOG_LEVEL
              value: {{ $root.Values.logLevel | quote }}
            {{- include "rm.redisEnv" $root | nindent 12 }}
            # The Go runtime collects harder near the container's limit
            # instead of being OOM-killed: 90% of the memory limit.
            - name: GOMEMLIMIT
            {{- $mib := include "rm.goMemLimitMiB" (dig "limits" "memory" "" $v.resources) }}
            {{- if $mib }}
              value: {{ printf "%sMiB" $mib | quote }}
            {{- else }}
              valueFrom:
                resourceFieldRef:
                  resource: limits.memory
                  divisor: "1"
            {{- end }}
          envFrom:
            - secretRef:
                name: {{ include "rm.secretName" $root }}
          ports:
            - name: http
              containerPort: {{ .port }}
            - name: metrics
              containerPort: {{ $root.Values.metrics.port }}
          livenessProbe:
            httpGet: {path: /healthz, port: http}
            periodSeconds: 10
            failureThreshold: 3
          readinessProbe:
            httpGet: {path: /readyz, port: http}
            periodSeconds: 5
            failureThreshold: 2
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            privileged: false
            capabilities:
              drop: ["ALL"]
          volumeMounts:
            - name: config
              mountPath: /etc/runner-manager
              readOnly: true
            - name: tmp
              mountPath: /tmp
            {{- with .extraMounts }}{{ toYaml . | nindent 12 }}{{ end }}
      volumes:
        - name: config
          configMap:
            name: {{ include "rm.fullname" $root }}-config
        - name: tmp
          emptyDir: {}
        {{- with .extraVolumes }}{{ toYaml . | nindent 8 }}{{ end }}
      {{- with $v.nodeSelector }}
      nodeSelector: {{ toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations: {{ toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity: {{ toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}

{{/* rm.scaling renders the ServiceAccount, HPA and PDB of one component. */}}
{{- define "rm.scaling" -}}
{{- $root := .root -}}
{{- $v := .values -}}
{{- $name := printf "%s-%s" (include "rm.fullname" $root) .component -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ $name }}
  labels:
    {{- include "rm.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
  {{- with $v.serviceAccount.annotations }}
  annotations: {{ toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: false
---
# /metrics is served on its own port only (metrics_listen); the
# ServiceMonitor scrapes every pod through this headless Service.
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}-metrics
  labels:
    {{- include "rm.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
    runner-manager.io/metrics: "true"
spec:
  clusterIP: None
  selector:
    {{- include "rm.selector" (dict "root" $root "component" .component) | nindent 4 }}
  ports:
    - name: metrics
      port: {{ $root.Values.metrics.port }}
      targetPort: metrics
{{- if $v.autoscaling.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $name }}
  labels:
    {{- include "rm.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $name }}
  minReplicas: {{ $v.autoscaling.minReplicas }}
  maxReplicas: {{ $v.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $v.autoscaling.targetCPUUtilizationPercentage }}
{{- end }}
{{- if $v.pdb.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $name }}
  labels:
    {{- include "rm.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  minAvailable: {{ $v.pdb.minAvailable }}
  selector:
    matchLabels:
      {{- include "rm.selector" (dict "root" $root "component" .component) | nindent 6 }}
{{- end }}
{{- end -}}

{{- define "rm.webhookSecret" -}}
{{- if .Values.secrets.webhookSecret -}}
{{- .Values.secrets.webhookSecret -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (printf "%s-secrets" (include "rm.fullname" .)) -}}
{{- if and $existing $existing.data (hasKey $existing.data "RM_GITHUB_WEBHOOK_SECRET") -}}
{{- index $existing.data "RM_GITHUB_WEBHOOK_SECRET" | b64dec -}}
{{- else -}}
{{- randAlphaNum 40 -}}
{{- end -}}
{{- end -}}
{{- end -}}
