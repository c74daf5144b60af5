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

{{- define "rm.redisURL" -}}
{{- if .Values.redis.url -}}{{ .Values.redis.url }}
{{- else if and .Values.redis.deploy (not .Values.config.redis) -}}{{ printf "redis://%s-redis:6379/0" (include "rm.fullname" .) }}
{{- end -}}
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
            {{- with (include "rm.redisURL" $root) }}
            - name: RM_REDIS_URL
              value: {{ . | quote }}
            {{- end }}
          envFrom:
            - secretRef:
                name: {{ include "rm.secretName" $root }}
          ports:
            - name: http
              containerPort: {{ .port }}
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
