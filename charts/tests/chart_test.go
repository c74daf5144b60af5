// Package tests lints and renders the Helm chart with Helm's own library,
// decodes every manifest strictly into its k8s.io/api type, and checks what
// the chart promises: probes, security context, one Deployment per enabled
// backend, the config checksum, and schema rejection of bad values.
package tests

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	"github.com/runner-manager/runner-manager/libs/config"
)

const chartDir = "../runner-manager"

// fullValues enables everything the chart can render.
func fullValues() map[string]any {
	return map[string]any{
		"image": map[string]any{"registry": "ghcr.io/acme", "tag": "1.2.3"},
		"config": map[string]any{
			"name": "rm-prod",
			"runner_groups": []any{
				map[string]any{"name": "docker-small", "organization": "acme", "max_runners": 10, "labels": []any{"linux", "small"},
					"backend": map[string]any{"type": "docker", "docker": map[string]any{"image": "ghcr.io/actions/actions-runner:2.321.0"}}},
				map[string]any{"name": "aws-large", "organization": "acme", "max_runners": 20, "labels": []any{"linux", "large"},
					"backend": map[string]any{"type": "aws", "aws": map[string]any{"region": "eu-west-1", "ami": "ami-0123456789abcdef0",
						"instance_types": []any{"c7i.2xlarge"}, "subnets": []any{"subnet-1"}}}},
				map[string]any{"name": "gcp-medium", "organization": "acme", "max_runners": 20, "labels": []any{"linux", "medium"},
					"backend": map[string]any{"type": "gcp", "gcp": map[string]any{"project": "acme-ci", "zones": []any{"europe-west1-b"},
						"machine_type": "n2-standard-4", "image_family": "ubuntu-2404-lts-amd64", "image_project": "ubuntu-os-cloud"}}},
			},
		},
		"secrets": map[string]any{"existingSecret": "rm-secrets"},
		"redis":   map[string]any{"url": "redis://redis-master.redis:6379/0", "deploy": false},
		"ingress": map[string]any{
			"ingress":     map[string]any{"enabled": true, "className": "nginx", "host": "rm.acme.dev", "tls": []any{map[string]any{"hosts": []any{"rm.acme.dev"}, "secretName": "rm-tls"}}},
			"autoscaling": map[string]any{"enabled": true, "minReplicas": 2, "maxReplicas": 8, "targetCPUUtilizationPercentage": 60},
		},
		"provisioners": map[string]any{
			"docker": map[string]any{"enabled": true},
			"aws":    map[string]any{"enabled": true, "replicas": 3, "serviceAccount": map[string]any{"annotations": map[string]any{"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/rm"}}, "autoscaling": map[string]any{"enabled": true, "minReplicas": 2, "maxReplicas": 6, "targetCPUUtilizationPercentage": 70}},
			"gcp":    map[string]any{"enabled": true, "nodeSelector": map[string]any{"pool": "system"}, "serviceAccount": map[string]any{"annotations": map[string]any{"iam.gke.io/gcp-service-account": "rm@acme-ci.iam.gserviceaccount.com"}}},
		},
		"metrics":       map[string]any{"serviceMonitor": map[string]any{"enabled": true}},
		"networkPolicy": map[string]any{"enabled": true},
	}
}

type rendered struct {
	files map[string]string
	objs  []object
}

type object struct {
	file string
	kind string
	name string
	doc  []byte
}

func load(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	require.NoError(t, err)
	return ch
}

func render(t *testing.T, values map[string]any) (*rendered, error) {
	t.Helper()
	ch := load(t)
	vals, err := chartutil.ToRenderValues(ch, values, chartutil.ReleaseOptions{Name: "rm", Namespace: "ci", IsInstall: true}, chartutil.DefaultCapabilities)
	if err != nil {
		return nil, err
	}
	files, err := engine.Render(ch, vals)
	if err != nil {
		return nil, err
	}
	r := &rendered{files: files}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	sep := regexp.MustCompile(`(?m)^---\s*$`)
	for _, n := range names {
		if !strings.HasSuffix(n, ".yaml") {
			continue
		}
		for _, doc := range sep.Split(files[n], -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			var meta struct {
				Kind     string `json:"kind"`
				Metadata struct {
					Name string `json:"name"`
				} `json:"metadata"`
			}
			require.NoError(t, yaml.Unmarshal([]byte(doc), &meta), "%s:\n%s", n, doc)
			r.objs = append(r.objs, object{file: n, kind: meta.Kind, name: meta.Metadata.Name, doc: []byte(doc)})
		}
	}
	return r, nil
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// decode decodes every manifest strictly into its k8s.io/api type.
func decodeAll(t *testing.T, r *rendered) (deps []appsv1.Deployment) {
	t.Helper()
	for _, o := range r.objs {
		var target any
		switch o.kind {
		case "Deployment":
			target = &appsv1.Deployment{}
		case "StatefulSet":
			target = &appsv1.StatefulSet{}
		case "Service":
			target = &corev1.Service{}
		case "ConfigMap":
			target = &corev1.ConfigMap{}
		case "Secret":
			target = &corev1.Secret{}
		case "ServiceAccount":
			target = &corev1.ServiceAccount{}
		case "HorizontalPodAutoscaler":
			target = &autoscalingv2.HorizontalPodAutoscaler{}
		case "PodDisruptionBudget":
			target = &policyv1.PodDisruptionBudget{}
		case "Ingress":
			target = &networkingv1.Ingress{}
		case "NetworkPolicy":
			target = &networkingv1.NetworkPolicy{}
		case "ServiceMonitor":
			target = &serviceMonitor{}
		case "PrometheusRule":
			target = &prometheusRule{}
		default:
			t.Fatalf("%s: unexpected kind %q", o.file, o.kind)
		}
		require.NoError(t, yaml.UnmarshalStrict(o.doc, target), "%s %s/%s", o.file, o.kind, o.name)
		if d, ok := target.(*appsv1.Deployment); ok {
			deps = append(deps, *d)
		}
	}
	return deps
}

// serviceMonitor is the part of monitoring.coreos.com/v1 the chart renders.
type serviceMonitor struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		Selector struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
		Endpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path"`
			Interval string `json:"interval"`
		} `json:"endpoints"`
	} `json:"spec"`
}

func (r *rendered) find(kind, name string) (object, bool) {
	for _, o := range r.objs {
		if o.kind == kind && o.name == name {
			return o, true
		}
	}
	return object{}, false
}

func (r *rendered) count(kind string) int {
	n := 0
	for _, o := range r.objs {
		if o.kind == kind {
			n++
		}
	}
	return n
}

func TestLint(t *testing.T) {
	for name, values := range map[string]map[string]any{"default": nil, "full": fullValues()} {
		t.Run(name, func(t *testing.T) {
			res := lint.AllWithKubeVersion(chartDir, values, "ci", nil)
			for _, m := range res.Messages {
				require.Less(t, m.Severity, support.ErrorSev, "lint: %s", m)
			}
		})
	}
}

func TestDefaultValues(t *testing.T) {
	r, err := render(t, nil)
	require.NoError(t, err)
	deps := decodeAll(t, r)
	names := deploymentNames(deps)
	require.Equal(t, []string{"rm-runner-manager-ingress", "rm-runner-manager-scheduler"}, names,
		"no provisioner is enabled by default")
	require.Equal(t, 1, r.count("StatefulSet"), "the trial Redis is deployed by default")
	for _, d := range deps {
		checkPod(t, d)
	}
	require.Contains(t, r.files["runner-manager/templates/NOTES.txt"], "/webhook")
}

func TestFullValues(t *testing.T) {
	r, err := render(t, fullValues())
	require.NoError(t, err)
	deps := decodeAll(t, r)
	require.Equal(t, []string{
		"rm-runner-manager-ingress",
		"rm-runner-manager-provisioner-aws",
		"rm-runner-manager-provisioner-docker",
		"rm-runner-manager-provisioner-gcp",
		"rm-runner-manager-scheduler",
	}, deploymentNames(deps), "one Deployment per enabled backend")
	for _, d := range deps {
		checkPod(t, d)
		c := d.Spec.Template.Spec.Containers[0]
		require.True(t, strings.HasPrefix(c.Image, "ghcr.io/acme/runner-manager/"), c.Image)
		require.True(t, strings.HasSuffix(c.Image, ":1.2.3"), c.Image)
		require.Equal(t, "rm-secrets", c.EnvFrom[0].SecretRef.Name, "existingSecret is used")
	}
	require.Equal(t, 0, r.count("StatefulSet"), "an external Redis: no trial Redis")
	require.Equal(t, 1, r.count("Secret"), "existingSecret: the chart makes only the Secret of the Redis URL")
	_, hasRedisSecret := r.find("Secret", "rm-runner-manager-redis")
	require.True(t, hasRedisSecret)

	// HPA: the ingress and AWS pools scale on their own; their Deployments leave replicas to the HPA.
	require.Equal(t, 2, r.count("HorizontalPodAutoscaler"))
	for _, d := range deps {
		switch d.Name {
		case "rm-runner-manager-ingress", "rm-runner-manager-provisioner-aws":
			require.Nil(t, d.Spec.Replicas, d.Name)
		default:
			require.NotNil(t, d.Spec.Replicas, d.Name)
		}
	}
	// Service accounts carry the cloud identities.
	sa, ok := r.find("ServiceAccount", "rm-runner-manager-provisioner-aws")
	require.True(t, ok)
	require.Contains(t, string(sa.doc), "eks.amazonaws.com/role-arn")
	sa, ok = r.find("ServiceAccount", "rm-runner-manager-provisioner-gcp")
	require.True(t, ok)
	require.Contains(t, string(sa.doc), "iam.gke.io/gcp-service-account")

	// Only the docker provisioner mounts the Docker socket and runs as root.
	for _, d := range deps {
		mountsSocket := false
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.HostPath != nil && strings.HasSuffix(v.HostPath.Path, "docker.sock") {
				mountsSocket = true
			}
		}
		require.Equal(t, d.Name == "rm-runner-manager-provisioner-docker", mountsSocket, d.Name)
	}

	ing, ok := r.find("Ingress", "rm-runner-manager")
	require.True(t, ok)
	require.Contains(t, string(ing.doc), "rm-tls")
	require.Equal(t, 3, r.count("NetworkPolicy"), "ingress, scheduler, metrics (no Redis of the chart)")
	require.Equal(t, 1, r.count("ServiceMonitor"))
	require.GreaterOrEqual(t, r.count("PodDisruptionBudget"), 4)
	require.Contains(t, r.files["runner-manager/templates/NOTES.txt"], "https://rm.acme.dev/webhook")

	// The rendered configuration is valid for the services themselves.
	cm, ok := r.find("ConfigMap", "rm-runner-manager-config")
	require.True(t, ok)
	var m corev1.ConfigMap
	require.NoError(t, yaml.UnmarshalStrict(cm.doc, &m))
	_, err = config.Parse([]byte(m.Data["config.yaml"]), config.Secrets{
		GitHubToken: "t", WebhookSecret: "w", RedisURL: "redis://redis-master.redis:6379/0",
	})
	require.NoError(t, err, "config.yaml:\n%s", m.Data["config.yaml"])
}

func TestConfigChecksumRollsPods(t *testing.T) {
	checksum := func(v map[string]any) string {
		r, err := render(t, v)
		require.NoError(t, err)
		deps := decodeAll(t, r)
		sum := deps[0].Spec.Template.Annotations["checksum/config"]
		require.Len(t, sum, 64)
		for _, d := range deps {
			require.Equal(t, sum, d.Spec.Template.Annotations["checksum/config"], "every pod carries the config checksum")
		}
		return sum
	}
	a := fullValues()
	b := fullValues()
	b["config"].(map[string]any)["time_to_live"] = "6h"
	require.NotEqual(t, checksum(a), checksum(b), "a config change changes the checksum, so the pods roll")
	require.Equal(t, checksum(a), checksum(fullValues()), "the same config gives the same checksum")
}

func TestSchemaRejectsBadValues(t *testing.T) {
	cases := map[string]map[string]any{
		"typo at the top":     {"schedulr": map[string]any{}},
		"typo in a component": {"scheduler": map[string]any{"replica": 3}},
		"wrong type":          {"ingress": map[string]any{"replicas": "two"}},
		"unknown backend":     {"provisioners": map[string]any{"azure": map[string]any{"enabled": true}}},
		"bad pull policy":     {"image": map[string]any{"pullPolicy": "Sometimes"}},
		"bad redis url":       {"redis": map[string]any{"url": "http://redis:6379"}},
		"bad manager name":    {"config": map[string]any{"name": "Runner_Manager"}},
		"bad log level":       {"logLevel": "verbose"},
	}
	for name, v := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := render(t, v)
			require.Error(t, err)
			require.Contains(t, err.Error(), "schema")
		})
	}
}

func TestRedisIsRequired(t *testing.T) {
	_, err := render(t, map[string]any{"redis": map[string]any{"deploy": false}})
	require.ErrorContains(t, err, "redis.url")
}

func deploymentNames(deps []appsv1.Deployment) []string {
	var names []string
	for _, d := range deps {
		names = append(names, d.Name)
	}
	sort.Strings(names)
	return names
}

// checkPod asserts probes and the security context of a Deployment.
func checkPod(t *testing.T, d appsv1.Deployment) {
	t.Helper()
	spec := d.Spec.Template.Spec
	require.Len(t, spec.Containers, 1, d.Name)
	c := spec.Containers[0]
	require.NotNil(t, c.LivenessProbe, d.Name)
	require.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path, d.Name)
	require.NotNil(t, c.ReadinessProbe, d.Name)
	require.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path, d.Name)
	sc := c.SecurityContext
	require.NotNil(t, sc, d.Name)
	require.False(t, *sc.AllowPrivilegeEscalation, d.Name)
	require.True(t, *sc.ReadOnlyRootFilesystem, d.Name)
	require.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop, d.Name)
	if d.Name != "rm-runner-manager-provisioner-docker" {
		require.True(t, *spec.SecurityContext.RunAsNonRoot, fmt.Sprintf("%s runs as non-root", d.Name))
	}
	require.Contains(t, d.Spec.Template.Annotations, "checksum/config", d.Name)
}

// prometheusRule is the part of monitoring.coreos.com/v1 PrometheusRule the
// chart renders.
type prometheusRule struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert       string            `json:"alert"`
				Expr        string            `json:"expr"`
				For         string            `json:"for"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

// metrics.prometheusRule.enabled renders a PrometheusRule whose alert fires
// on dead letters by origin stream (issue 16: nothing waits in the DLQ
// silently); off by default.
func TestPrometheusRule(t *testing.T) {
	r, err := render(t, nil)
	require.NoError(t, err)
	require.Zero(t, r.count("PrometheusRule"), "off by default")

	v := fullValues()
	v["metrics"] = map[string]any{"prometheusRule": map[string]any{"enabled": true, "labels": map[string]any{"release": "kube-prometheus"}}}
	r, err = render(t, v)
	require.NoError(t, err)
	o, ok := r.find("PrometheusRule", "rm-runner-manager")
	require.True(t, ok)
	var pr prometheusRule
	require.NoError(t, yaml.UnmarshalStrict(o.doc, &pr))
	require.Equal(t, "monitoring.coreos.com/v1", pr.APIVersion)
	require.Equal(t, "kube-prometheus", pr.Metadata.Labels["release"])
	alerts := map[string]string{}
	for _, g := range pr.Spec.Groups {
		for _, rule := range g.Rules {
			require.NotEmpty(t, rule.Annotations["summary"], rule.Alert)
			alerts[rule.Alert] = rule.Expr
		}
	}
	require.Contains(t, alerts, "RunnerManagerDeadLetters")
	require.Contains(t, alerts["RunnerManagerDeadLetters"], "runner_manager_dlq_entries")
	require.Contains(t, alerts["RunnerManagerDeadLetters"], "stream")
}
