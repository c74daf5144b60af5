package tests

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

func decodeAs[T any](t *testing.T, o object) T {
	t.Helper()
	var v T
	require.NoError(t, yaml.UnmarshalStrict(o.doc, &v), "%s %s", o.kind, o.name)
	return v
}

func mustFind(t *testing.T, r *rendered, kind, name string) object {
	t.Helper()
	o, ok := r.find(kind, name)
	require.True(t, ok, "%s %s is rendered", kind, name)
	return o
}

func envVar(c corev1.Container, name string) (corev1.EnvVar, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e, true
		}
	}
	return corev1.EnvVar{}, false
}

// secretData returns a Secret's data and stringData together.
func secretData(s corev1.Secret) map[string]string {
	out := map[string]string{}
	for k, v := range s.Data {
		out[k] = string(v)
	}
	for k, v := range s.StringData {
		out[k] = v
	}
	return out
}

// The bundled Redis gets a generated password from a Secret, through an
// environment variable: no password in any pod spec; every runner-manager
// pod reads RM_REDIS_URL from a Secret.
func TestBundledRedisHasAPassword(t *testing.T) {
	r, err := render(t, map[string]any{"provisioners": map[string]any{"docker": map[string]any{"enabled": true}}})
	require.NoError(t, err)
	deps := decodeAll(t, r)
	require.Len(t, deps, 3)

	sec := decodeAs[corev1.Secret](t, mustFind(t, r, "Secret", "rm-runner-manager-redis"))
	data := secretData(sec)
	password := data["redis-password"]
	require.Len(t, password, 32, "a generated password")
	require.Regexp(t, `^[A-Za-z0-9]+$`, password)
	require.Equal(t, "redis://:"+password+"@rm-runner-manager-redis:6379/0", data["RM_REDIS_URL"])

	// A second rendering (no cluster: lookup finds nothing) generates
	// another: the password is random, not a constant of the chart.
	r2, err := render(t, nil)
	require.NoError(t, err)
	sec2 := decodeAs[corev1.Secret](t, mustFind(t, r2, "Secret", "rm-runner-manager-redis"))
	require.NotEqual(t, password, secretData(sec2)["redis-password"])

	sts := decodeAs[appsv1.StatefulSet](t, mustFind(t, r, "StatefulSet", "rm-runner-manager-redis"))
	c := sts.Spec.Template.Spec.Containers[0]
	e, ok := envVar(c, "REDIS_PASSWORD")
	require.True(t, ok)
	require.Empty(t, e.Value)
	require.Equal(t, "rm-runner-manager-redis", e.ValueFrom.SecretKeyRef.Name)
	require.Equal(t, "redis-password", e.ValueFrom.SecretKeyRef.Key)
	require.Contains(t, strings.Join(c.Args, " "), "--requirepass $(REDIS_PASSWORD)")

	for _, d := range deps {
		c := d.Spec.Template.Spec.Containers[0]
		e, ok := envVar(c, "RM_REDIS_URL")
		require.True(t, ok, d.Name)
		require.Empty(t, e.Value, "%s: RM_REDIS_URL is not a plain value", d.Name)
		require.NotNil(t, e.ValueFrom.SecretKeyRef, d.Name)
		require.Equal(t, "rm-runner-manager-redis", e.ValueFrom.SecretKeyRef.Name, d.Name)
		require.Equal(t, "RM_REDIS_URL", e.ValueFrom.SecretKeyRef.Key, d.Name)
	}

	// The password appears in the Redis Secret only.
	for _, o := range r.objs {
		if o.kind == "Secret" && o.name == "rm-runner-manager-redis" {
			continue
		}
		require.NotContains(t, string(o.doc), password, "%s %s holds the Redis password", o.kind, o.name)
	}
	require.NotContains(t, r.files["runner-manager/templates/NOTES.txt"], password)
}

// redis.auth.existingSecret: the chart makes no password; Redis and the
// services read it from that Secret.
func TestBundledRedisExistingSecret(t *testing.T) {
	r, err := render(t, map[string]any{"redis": map[string]any{"auth": map[string]any{
		"existingSecret": "my-redis", "existingSecretPasswordKey": "pw"}}})
	require.NoError(t, err)
	deps := decodeAll(t, r)
	sec := decodeAs[corev1.Secret](t, mustFind(t, r, "Secret", "rm-runner-manager-redis"))
	data := secretData(sec)
	require.NotContains(t, data, "redis-password", "no generated password")
	require.Equal(t, "redis://rm-runner-manager-redis:6379/0", data["RM_REDIS_URL"], "the URL without a password")

	sts := decodeAs[appsv1.StatefulSet](t, mustFind(t, r, "StatefulSet", "rm-runner-manager-redis"))
	e, ok := envVar(sts.Spec.Template.Spec.Containers[0], "REDIS_PASSWORD")
	require.True(t, ok)
	require.Equal(t, "my-redis", e.ValueFrom.SecretKeyRef.Name)
	require.Equal(t, "pw", e.ValueFrom.SecretKeyRef.Key)
	for _, d := range deps {
		c := d.Spec.Template.Spec.Containers[0]
		e, ok := envVar(c, "RM_REDIS_PASSWORD")
		require.True(t, ok, d.Name)
		require.Equal(t, "my-redis", e.ValueFrom.SecretKeyRef.Name, d.Name)
		require.Equal(t, "pw", e.ValueFrom.SecretKeyRef.Key, d.Name)
		e, ok = envVar(c, "RM_REDIS_URL")
		require.True(t, ok, d.Name)
		require.Equal(t, "rm-runner-manager-redis", e.ValueFrom.SecretKeyRef.Name, d.Name)
	}
}

// An external Redis URL from the values goes into a Secret; redis.existingSecret
// is used as is.
func TestExternalRedisURLInASecret(t *testing.T) {
	const url = "redis://:ext-pass-93ab@redis-master.redis:6379/0"
	r, err := render(t, map[string]any{"redis": map[string]any{"url": url, "deploy": false}})
	require.NoError(t, err)
	deps := decodeAll(t, r)
	require.Equal(t, 0, r.count("StatefulSet"))
	sec := decodeAs[corev1.Secret](t, mustFind(t, r, "Secret", "rm-runner-manager-redis"))
	require.Equal(t, url, secretData(sec)["RM_REDIS_URL"])
	for _, o := range r.objs {
		if o.kind != "Secret" {
			require.NotContains(t, string(o.doc), "ext-pass-93ab", "%s %s", o.kind, o.name)
		}
	}
	for _, d := range deps {
		e, ok := envVar(d.Spec.Template.Spec.Containers[0], "RM_REDIS_URL")
		require.True(t, ok)
		require.Equal(t, "rm-runner-manager-redis", e.ValueFrom.SecretKeyRef.Name)
	}

	r, err = render(t, map[string]any{"redis": map[string]any{"deploy": false, "existingSecret": "ext-redis", "existingSecretKey": "url"}})
	require.NoError(t, err)
	deps = decodeAll(t, r)
	_, ok := r.find("Secret", "rm-runner-manager-redis")
	require.False(t, ok, "existingSecret: no Redis Secret made")
	for _, d := range deps {
		e, ok := envVar(d.Spec.Template.Spec.Containers[0], "RM_REDIS_URL")
		require.True(t, ok)
		require.Equal(t, "ext-redis", e.ValueFrom.SecretKeyRef.Name)
		require.Equal(t, "url", e.ValueFrom.SecretKeyRef.Key)
	}
}

// A password in config.redis.url would land in the ConfigMap: refused.
func TestPasswordInConfigRedisURLRefused(t *testing.T) {
	_, err := render(t, map[string]any{"redis": map[string]any{"deploy": false},
		"config": map[string]any{"redis": map[string]any{"url": "redis://:pw@redis:6379/0"}}})
	require.ErrorContains(t, err, "redis.url")
}

// The NetworkPolicy is on by default: Redis only from the runner-manager
// pods on 6379; metrics only on 9090 from the monitoring namespace.
func TestNetworkPolicyByDefault(t *testing.T) {
	r, err := render(t, nil)
	require.NoError(t, err)
	decodeAll(t, r)

	np := decodeAs[networkingv1.NetworkPolicy](t, mustFind(t, r, "NetworkPolicy", "rm-runner-manager-redis"))
	require.Equal(t, "redis", np.Spec.PodSelector.MatchLabels["app.kubernetes.io/component"])
	require.Equal(t, "rm", np.Spec.PodSelector.MatchLabels["app.kubernetes.io/instance"])
	require.Len(t, np.Spec.Ingress, 1)
	rule := np.Spec.Ingress[0]
	require.Len(t, rule.Ports, 1)
	require.Equal(t, intstr.FromInt32(6379), *rule.Ports[0].Port)
	require.Len(t, rule.From, 1)
	from := rule.From[0]
	require.Nil(t, from.NamespaceSelector, "only pods of the release's namespace")
	require.NotNil(t, from.PodSelector)
	require.Equal(t, "rm", from.PodSelector.MatchLabels["app.kubernetes.io/instance"])
	require.Len(t, from.PodSelector.MatchExpressions, 1)
	require.Equal(t, "app.kubernetes.io/component", from.PodSelector.MatchExpressions[0].Key)
	require.ElementsMatch(t, []string{"ingress", "scheduler", "provisioner-docker", "provisioner-aws", "provisioner-gcp"},
		from.PodSelector.MatchExpressions[0].Values, "the runner-manager pods, not Redis itself or anything else")

	np = decodeAs[networkingv1.NetworkPolicy](t, mustFind(t, r, "NetworkPolicy", "rm-runner-manager-metrics"))
	require.Len(t, np.Spec.Ingress, 1)
	rule = np.Spec.Ingress[0]
	require.Len(t, rule.Ports, 1)
	require.Equal(t, intstr.FromInt32(9090), *rule.Ports[0].Port, "the metrics rule opens only the metrics port")
	require.Len(t, rule.From, 1)
	require.NotNil(t, rule.From[0].NamespaceSelector)

	// Every policy of the chart opens only named ports.
	for _, o := range r.objs {
		if o.kind != "NetworkPolicy" {
			continue
		}
		np := decodeAs[networkingv1.NetworkPolicy](t, o)
		for _, rule := range np.Spec.Ingress {
			require.NotEmpty(t, rule.Ports, "%s: a rule without ports opens every port", o.name)
		}
	}

	r, err = render(t, map[string]any{"networkPolicy": map[string]any{"enabled": false}})
	require.NoError(t, err)
	require.Equal(t, 0, r.count("NetworkPolicy"))
}

// Metrics have their own port: metrics_listen in the configuration, a
// container port, a Service port and the ServiceMonitor's endpoint.
func TestMetricsPort(t *testing.T) {
	r, err := render(t, fullValues())
	require.NoError(t, err)
	deps := decodeAll(t, r)
	cm := decodeAs[corev1.ConfigMap](t, mustFind(t, r, "ConfigMap", "rm-runner-manager-config"))
	var cfg map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(cm.Data["config.yaml"]), &cfg))
	for _, section := range []string{"ingress", "scheduler", "provisioner"} {
		require.Equal(t, ":9090", cfg[section].(map[string]any)["metrics_listen"], section)
	}
	for _, d := range deps {
		c := d.Spec.Template.Spec.Containers[0]
		found := false
		for _, p := range c.Ports {
			if p.Name == "metrics" {
				require.Equal(t, int32(9090), p.ContainerPort)
				found = true
			}
		}
		require.True(t, found, "%s exposes the metrics port", d.Name)
		svc := decodeAs[corev1.Service](t, mustFind(t, r, "Service", d.Name+"-metrics"))
		require.Equal(t, "metrics", svc.Spec.Ports[0].Name)
		require.Equal(t, intstr.FromString("metrics"), svc.Spec.Ports[0].TargetPort)
		require.Equal(t, d.Spec.Selector.MatchLabels, svc.Spec.Selector, d.Name)
	}
	sm := decodeAs[serviceMonitor](t, mustFind(t, r, "ServiceMonitor", "rm-runner-manager"))
	require.Len(t, sm.Spec.Endpoints, 1)
	require.Equal(t, "metrics", sm.Spec.Endpoints[0].Port)
	require.Equal(t, "/metrics", sm.Spec.Endpoints[0].Path)
}

// Every Go container has a memory limit and GOMEMLIMIT below it.
func TestGOMEMLIMIT(t *testing.T) {
	r, err := render(t, fullValues())
	require.NoError(t, err)
	deps := decodeAll(t, r)
	for _, d := range deps {
		c := d.Spec.Template.Spec.Containers[0]
		limit := c.Resources.Limits.Memory()
		require.False(t, limit.IsZero(), "%s has a memory limit", d.Name)
		e, ok := envVar(c, "GOMEMLIMIT")
		require.True(t, ok, d.Name)
		require.Equal(t, fmtMiB(limit.Value()*9/10), e.Value, d.Name)
	}

	// A limit the chart cannot compute with comes from the pod's own limit.
	v := map[string]any{"scheduler": map[string]any{"resources": map[string]any{"limits": map[string]any{"memory": "0.5Gi"}}}}
	r, err = render(t, v)
	require.NoError(t, err)
	for _, d := range decodeAll(t, r) {
		if d.Name != "rm-runner-manager-scheduler" {
			continue
		}
		e, ok := envVar(d.Spec.Template.Spec.Containers[0], "GOMEMLIMIT")
		require.True(t, ok)
		require.NotNil(t, e.ValueFrom.ResourceFieldRef)
		require.Equal(t, "limits.memory", e.ValueFrom.ResourceFieldRef.Resource)
	}
}

func fmtMiB(bytes int64) string { return strconv.FormatInt(bytes/(1<<20), 10) + "MiB" }
