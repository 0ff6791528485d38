{{/*
The one template every Vigil service is rendered from: ConfigMap, ServiceAccount, Service, Deployment,
PodDisruptionBudget and (where the service scales) HorizontalPodAutoscaler. Called from services.yaml
with (dict "root" $ "name" "<service>").
*/}}
{{- define "vigil.service" -}}
{{- $root := .root -}}
{{- $name := .name -}}
{{- $v := include "vigil.svcValues" . | fromYaml -}}
{{- $fullname := include "vigil.serviceName" . -}}
{{- $prefix := include "vigil.envPrefix" $name -}}
{{- $c := $root.Values.common -}}
{{- $config := include "vigil.serviceConfig" . -}}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ $fullname }}-config
  labels:
    {{- include "vigil.serviceLabels" . | nindent 4 }}
data:
  {{- $config | trim | nindent 2 }}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "vigil.serviceLabels" . | nindent 4 }}
# Vigil never talks to the Kubernetes API.
automountServiceAccountToken: false
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "vigil.serviceLabels" . | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "vigil.selectorLabels" . | nindent 4 }}
  ports:
    - name: grpc
      port: {{ $v.grpcPort }}
      targetPort: grpc
      protocol: TCP
      appProtocol: grpc
    - name: metrics
      port: {{ $v.metricsPort }}
      targetPort: metrics
      protocol: TCP
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "vigil.serviceLabels" . | nindent 4 }}
spec:
  {{- if not $v.autoscaling.enabled }}
  replicas: {{ $v.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  {{- if eq (int $v.replicas) 1 }}
  # A single replica (the audit log's single writer): the old pod stops before the new one starts.
  strategy:
    type: Recreate
  {{- else }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
  {{- end }}
  selector:
    matchLabels:
      {{- include "vigil.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "vigil.serviceLabels" . | nindent 8 }}
      annotations:
        # Settings changes roll the pods.
        checksum/config: {{ $config | sha256sum }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ $fullname }}
      automountServiceAccountToken: false
      enableServiceLinks: false
      terminationGracePeriodSeconds: {{ add (int $c.shutdownGraceSeconds) 5 }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
        runAsGroup: 10001
        fsGroup: 10001
        seccompProfile:
          type: RuntimeDefault
      {{- if $v.topologySpread.enabled }}
      topologySpreadConstraints:
        {{- range $key := list "topology.kubernetes.io/zone" "kubernetes.io/hostname" }}
        - maxSkew: {{ $v.topologySpread.maxSkew }}
          topologyKey: {{ $key }}
          whenUnsatisfiable: {{ $v.topologySpread.whenUnsatisfiable }}
          labelSelector:
            matchLabels:
              {{- include "vigil.selectorLabels" $ | nindent 14 }}
        {{- end }}
      {{- end }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ $name }}
          image: {{ include "vigil.image" . }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          # A writable scratch directory: the root filesystem is read-only.
          workingDir: /var/lib/vigil
          ports:
            - name: grpc
              containerPort: {{ $v.grpcPort }}
              protocol: TCP
            - name: metrics
              containerPort: {{ $v.metricsPort }}
              protocol: TCP
          envFrom:
            - configMapRef:
                name: {{ $fullname }}-config
          env:
            # Credentials come only from existing Secrets named in values.
            - name: {{ $prefix }}DATABASE_URL
              valueFrom:
                secretKeyRef:
                  name: {{ $v.secrets.database.name }}
                  key: {{ $v.secrets.database.key }}
            - name: {{ $prefix }}SERVICE_TOKEN
              valueFrom:
                secretKeyRef:
                  name: {{ $v.secrets.serviceToken.name }}
                  key: {{ $v.secrets.serviceToken.key }}
            {{- if include "vigil.kafkaUsers" $root }}
            # The SCRAM password of this service's KafkaUser, from the Secret Strimzi's user operator makes.
            - name: {{ $prefix }}KAFKA_PASSWORD
              valueFrom:
                secretKeyRef:
                  name: {{ $root.Release.Name }}-{{ $name }}
                  key: password
            {{- end }}
            {{- if $v.usesS3 }}
            - name: {{ $prefix }}S3_ACCESS_KEY
              valueFrom:
                secretKeyRef:
                  name: {{ $root.Values.secrets.s3.name }}
                  key: {{ $root.Values.secrets.s3.accessKeyKey }}
            - name: {{ $prefix }}S3_SECRET_KEY
              valueFrom:
                secretKeyRef:
                  name: {{ $root.Values.secrets.s3.name }}
                  key: {{ $root.Values.secrets.s3.secretKeyKey }}
            {{- end }}
          startupProbe:
            grpc:
              port: {{ $v.grpcPort }}
              service: liveness
            periodSeconds: {{ $v.probes.startup.periodSeconds }}
            failureThreshold: {{ $v.probes.startup.failureThreshold }}
            timeoutSeconds: {{ $v.probes.startup.timeoutSeconds }}
          livenessProbe:
            # Only the process: the kit keeps "liveness" SERVING while it runs.
            grpc:
              port: {{ $v.grpcPort }}
              service: liveness
            periodSeconds: {{ $v.probes.liveness.periodSeconds }}
            failureThreshold: {{ $v.probes.liveness.failureThreshold }}
            timeoutSeconds: {{ $v.probes.liveness.timeoutSeconds }}
          readinessProbe:
            # The overall status: NOT_SERVING while the database, broker (or S3) is unreachable.
            grpc:
              port: {{ $v.grpcPort }}
              service: ""
            periodSeconds: {{ $v.probes.readiness.periodSeconds }}
            failureThreshold: {{ $v.probes.readiness.failureThreshold }}
            timeoutSeconds: {{ $v.probes.readiness.timeoutSeconds }}
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            runAsNonRoot: true
            readOnlyRootFilesystem: true
            allowPrivilegeEscalation: false
            privileged: false
            capabilities:
              drop: [ALL]
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            - name: work
              mountPath: /var/lib/vigil
            - name: issuers
              mountPath: /etc/vigil/issuers
              readOnly: true
            {{- if $root.Values.common.kafkaCaSecret.name }}
            - name: kafka-ca
              mountPath: /etc/vigil/kafka-ca
              readOnly: true
            {{- end }}
            {{- if and $v.secrets.signingKey $v.secrets.signingKey.name }}
            - name: signing-key
              mountPath: /etc/vigil/signing
              readOnly: true
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: 256Mi
        - name: work
          emptyDir:
            sizeLimit: 1Gi
        - name: issuers
          secret:
            secretName: {{ $root.Values.secrets.authPublicKeys.name }}
            items:
              - key: {{ $root.Values.secrets.authPublicKeys.key }}
                path: issuers.pem
        {{- with $root.Values.common.kafkaCaSecret }}
        {{- if .name }}
        - name: kafka-ca
          secret:
            secretName: {{ .name }}
            items:
              - key: {{ .key }}
                path: ca.crt
        {{- end }}
        {{- end }}
        {{- if and $v.secrets.signingKey $v.secrets.signingKey.name }}
        - name: signing-key
          secret:
            secretName: {{ $v.secrets.signingKey.name }}
            items:
              - key: {{ $v.secrets.signingKey.key }}
                path: signing-key.pem
        {{- end }}
{{- if $v.podDisruptionBudget.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "vigil.serviceLabels" . | nindent 4 }}
spec:
  # maxUnavailable (not minAvailable) so that a single-replica service never blocks a node drain.
  maxUnavailable: {{ $v.podDisruptionBudget.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "vigil.selectorLabels" . | nindent 6 }}
{{- end }}
{{- if $v.autoscaling.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "vigil.serviceLabels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $fullname }}
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
{{- end }}

{{/* The ConfigMap data of one service: its settings as <PREFIX><FIELD> environment variables. */}}
{{- define "vigil.serviceConfig" -}}
{{- $root := .root -}}
{{- $name := .name -}}
{{- $v := index $root.Values.services $name -}}
{{- $prefix := include "vigil.envPrefix" $name -}}
{{- $c := $root.Values.common -}}
{{- $env := dict -}}
{{- $_ := set $env "SERVICE_NAME" $name -}}
{{- $_ := set $env "GRPC_HOST" "0.0.0.0" -}}
{{- $_ := set $env "GRPC_PORT" ($v.grpcPort | toString) -}}
{{- $_ := set $env "METRICS_PORT" ($v.metricsPort | toString) -}}
{{- $_ := set $env "KAFKA_BOOTSTRAP" $c.kafkaBootstrap -}}
{{- $_ := set $env "KAFKA_SECURITY_PROTOCOL" $c.kafkaSecurityProtocol -}}
{{- if include "vigil.kafkaUsers" $root -}}
{{- $_ := set $env "KAFKA_SASL_MECHANISM" "SCRAM-SHA-512" -}}
{{- $_ := set $env "KAFKA_USERNAME" (printf "%s-%s" $root.Release.Name $name) -}}
{{- end -}}
{{- if $c.kafkaCaSecret.name -}}
{{- $_ := set $env "KAFKA_CA_FILE" "/etc/vigil/kafka-ca/ca.crt" -}}
{{- end -}}
{{- if $v.usesS3 -}}
{{- $_ := set $env "S3_ENDPOINT" $c.s3Endpoint -}}
{{- $_ := set $env "S3_SECURE" ($c.s3Secure | toString) -}}
{{- $_ := set $env "S3_REGION" $c.s3Region -}}
{{- end -}}
{{- $_ := set $env "AUTH_ISSUER" $c.authIssuer -}}
{{- $_ := set $env "AUTH_PUBLIC_KEYS_FILE" "/etc/vigil/issuers/issuers.pem" -}}
{{- $_ := set $env "LOG_LEVEL" $c.logLevel -}}
{{- $_ := set $env "READINESS_INTERVAL_S" ($c.readinessIntervalSeconds | toString) -}}
{{- $_ := set $env "READINESS_TIMEOUT_S" ($c.readinessTimeoutSeconds | toString) -}}
{{- $_ := set $env "SHUTDOWN_GRACE_S" ($c.shutdownGraceSeconds | toString) -}}
{{- range $callee := $v.calls -}}
{{- $target := index $root.Values.services $callee -}}
{{- $_ := set $env (printf "%s_ADDR" (upper $callee)) (printf "%s:%v" (include "vigil.serviceName" (dict "root" $root "name" $callee)) $target.grpcPort) -}}
{{- end -}}
{{- if and $v.secrets.signingKey $v.secrets.signingKey.name -}}
{{- $_ := set $env "SIGNING_KEY_FILE" "/etc/vigil/signing/signing-key.pem" -}}
{{- end -}}
{{- range $key, $value := $v.settings -}}
{{- if or (kindIs "slice" $value) (kindIs "map" $value) -}}
{{- $_ := set $env (upper $key) (toJson $value) -}}
{{- else -}}
{{- $_ := set $env (upper $key) (toString $value) -}}
{{- end -}}
{{- end -}}
{{- range $key := keys $env | sortAlpha }}
{{ printf "%s%s" $prefix $key }}: {{ index $env $key | quote }}
{{- end -}}
{{- end }}
