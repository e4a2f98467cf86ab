{{- define "sakura-ccm.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sakura-ccm.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sakura-ccm.labels" -}}
app.kubernetes.io/name: {{ include "sakura-ccm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "sakura-ccm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sakura-ccm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sakura-ccm.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sakura-ccm.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "sakura-ccm.secretName" -}}
{{- default (include "sakura-ccm.fullname" .) .Values.existingSecret -}}
{{- end -}}

{{/*
The earlier chart's values (sacloud/sakura-cloud-controller-manager 0.4.3):
sacloud.accessToken, sacloud.accessTokenSecret, sacloud.zone and
sacloud.clusterID, mapped onto today's names so that its install command
still works. A value given under both names, differing, fails and names
both (never the credentials' values). Idempotent: every template that reads
these values includes it first.
*/}}
{{- define "sakura-ccm.earlierValues" -}}
{{- $old := .Values.sacloud | default dict -}}
{{- range $m := list (dict "old" "accessToken" "new" "accessToken" "default" "" "secret" true) (dict "old" "accessTokenSecret" "new" "accessTokenSecret" "default" "" "secret" true) (dict "old" "zone" "new" "zone" "default" "is1a" "secret" false) (dict "old" "clusterID" "new" "clusterName" "default" "" "secret" false) -}}
{{- $o := index $old $m.old | default "" | toString -}}
{{- if $o -}}
{{- $n := index $.Values $m.new | default "" | toString -}}
{{- if and $n (ne $n $m.default) (ne $n $o) -}}
{{- if $m.secret -}}
{{- fail (printf "sacloud.%s (the earlier chart's name) and %s are both set and differ: set only %s" $m.old $m.new $m.new) -}}
{{- else -}}
{{- fail (printf "sacloud.%s (the earlier chart's name) is %q but %s is %q: set only %s" $m.old $o $m.new $n $m.new) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $.Values $m.new $o -}}
{{- end -}}
{{- end -}}
{{- end -}}
