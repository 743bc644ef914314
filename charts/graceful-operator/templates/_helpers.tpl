{{/*
Object names are fixed (graceful-webhook, graceful-operator, the Secret
graceful-webhook-tls), not derived from the release name: the webhook
configuration is cluster-wide and the operator looks these names up, so one
release per cluster is the product's shape, as with `kubectl apply -f manifests/`.
*/}}

{{/* The labels of every object of one component: the same as manifests/, plus Helm's own. */}}
{{- define "graceful.labels" -}}
app.kubernetes.io/name: graceful-{{ . }}
app.kubernetes.io/component: {{ . }}
app.kubernetes.io/part-of: graceful-operator
{{- end }}

{{- define "graceful.helmLabels" -}}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* metadata.labels of a component's object: call with (list $ "webhook"). */}}
{{- define "graceful.metaLabels" -}}
{{ include "graceful.labels" (index . 1) }}
{{ include "graceful.helmLabels" (index . 0) }}
{{- end }}

{{- define "graceful.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "graceful.builtinCertificates" -}}
{{- if eq .Values.certificates.mode "builtin" }}true{{ else if eq .Values.certificates.mode "cert-manager" }}{{ else }}{{ fail "certificates.mode must be builtin or cert-manager" }}{{ end }}
{{- end }}

{{/* The pod securityContext both Deployments share (restricted Pod Security). */}}
{{- define "graceful.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "graceful.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
privileged: false
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "graceful.antiAffinity" -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            app.kubernetes.io/name: graceful-{{ . }}
{{- end }}

{{/* imagePullSecrets, nodeSelector, tolerations: only when set, so defaults match manifests/. */}}
{{- define "graceful.scheduling" -}}
{{- $root := index . 0 }}{{ $component := index . 1 }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $component.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $component.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
