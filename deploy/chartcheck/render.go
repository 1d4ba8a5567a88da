package chartcheck

import (
	"fmt"
	"os"
	"path"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	"helm.sh/helm/v3/pkg/releaseutil"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	dynfake "k8s.io/client-go/dynamic/fake"
	"sigs.k8s.io/yaml"
)

// KubeVersion is the Kubernetes version charts are rendered and linted for.
const KubeVersion = "v1.31.0"

// Options say how to render a chart, as `helm template` flags do.
type Options struct {
	// ReleaseName is the release's name; "" means "projector".
	ReleaseName string
	// Namespace is the release's namespace; "" means "default".
	Namespace string
	// ValuesFiles are merged over the chart's values.yaml in order, as `-f` does.
	ValuesFiles []string
	// Values are merged last, over ValuesFiles, as `--set` does (nested maps).
	Values map[string]any
	// Existing are the objects the chart's lookup calls find, as in the cluster of an upgrade;
	// none by default, as for `helm template` and a first install.
	Existing []*unstructured.Unstructured
}

func (o Options) releaseName() string {
	if o.ReleaseName == "" {
		return "projector"
	}
	return o.ReleaseName
}

func (o Options) namespace() string {
	if o.Namespace == "" {
		return "default"
	}
	return o.Namespace
}

// Manifest is one rendered Kubernetes object.
type Manifest struct {
	// Source is the template that produced it, e.g. "projector/templates/deployment.yaml".
	Source string
	// Content is the object's YAML.
	Content string
}

// UserValues merges the options' values files and values into one map, as helm does for -f and
// --set, without the chart's defaults.
func UserValues(opts Options) (map[string]any, error) {
	merged := map[string]any{}
	for _, f := range opts.ValuesFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("values file: %w", err)
		}
		var v map[string]any
		if err := yaml.Unmarshal(b, &v); err != nil {
			return nil, fmt.Errorf("values file %s: %w", f, err)
		}
		merged = mergeMaps(merged, v)
	}
	return mergeMaps(merged, opts.Values), nil
}

// mergeMaps returns a with b merged over it, recursively for nested maps.
func mergeMaps(a, b map[string]any) map[string]any {
	out := make(map[string]any, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if bm, ok := v.(map[string]any); ok {
			if am, ok := out[k].(map[string]any); ok {
				out[k] = mergeMaps(am, bm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// Render renders the chart in chartDir as `helm template` does (values schema checked, NOTES.txt
// and partials left out) and returns its manifests in helm's install order.
func Render(chartDir string, opts Options) ([]Manifest, error) {
	chrt, err := loader.Load(chartDir)
	if err != nil {
		return nil, fmt.Errorf("load chart %s: %w", chartDir, err)
	}
	user, err := UserValues(opts)
	if err != nil {
		return nil, err
	}
	kv, err := chartutil.ParseKubeVersion(KubeVersion)
	if err != nil {
		return nil, fmt.Errorf("kube version: %w", err)
	}
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = *kv
	vals, err := chartutil.ToRenderValues(chrt, user, chartutil.ReleaseOptions{
		Name: opts.releaseName(), Namespace: opts.namespace(), Revision: 1, IsInstall: true,
	}, caps)
	if err != nil {
		return nil, fmt.Errorf("chart %s values: %w", chrt.Name(), err)
	}
	files, err := engine.RenderWithClientProvider(chrt, vals, cluster(opts.Existing))
	if err != nil {
		return nil, fmt.Errorf("render chart %s: %w", chrt.Name(), err)
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	var out []Manifest
	for _, name := range names {
		base := path.Base(name)
		if strings.HasPrefix(base, "_") || strings.HasSuffix(name, "NOTES.txt") {
			continue
		}
		docs := releaseutil.SplitManifests(files[name])
		keys := make([]string, 0, len(docs))
		for k := range docs {
			keys = append(keys, k)
		}
		sort.Sort(releaseutil.BySplitManifestsOrder(keys))
		for _, k := range keys {
			if strings.TrimSpace(docs[k]) == "" {
				continue
			}
			out = append(out, Manifest{Source: name, Content: docs[k]})
		}
	}
	return out, nil
}

// cluster is a ClientProvider for lookup over objects: a fake cluster holding them.
type cluster []*unstructured.Unstructured

// GetClientFor implements engine.ClientProvider: every kind is namespaced, and its resource is
// its lower-cased plural.
func (c cluster) GetClientFor(apiVersion, kind string) (dynamic.NamespaceableResourceInterface, bool, error) {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return nil, false, err
	}
	gvr := gv.WithResource(strings.ToLower(kind) + "s")
	objs := make([]runtime.Object, len(c))
	for i, o := range c {
		objs[i] = o.DeepCopy()
	}
	client := dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{gvr: kind + "List"}, objs...)
	return client.Resource(gvr), true, nil
}

// Notes renders the chart's NOTES.txt with the given options.
func Notes(chartDir string, opts Options) (string, error) {
	chrt, err := loader.Load(chartDir)
	if err != nil {
		return "", fmt.Errorf("load chart %s: %w", chartDir, err)
	}
	user, err := UserValues(opts)
	if err != nil {
		return "", err
	}
	vals, err := chartutil.ToRenderValues(chrt, user, chartutil.ReleaseOptions{
		Name: opts.releaseName(), Namespace: opts.namespace(), Revision: 1, IsInstall: true,
	}, nil)
	if err != nil {
		return "", fmt.Errorf("chart %s values: %w", chrt.Name(), err)
	}
	files, err := engine.Render(chrt, vals)
	if err != nil {
		return "", fmt.Errorf("render chart %s: %w", chrt.Name(), err)
	}
	for name, content := range files {
		if strings.HasSuffix(name, "templates/NOTES.txt") {
			return content, nil
		}
	}
	return "", fmt.Errorf("chart %s has no templates/NOTES.txt", chrt.Name())
}

// Lint runs helm's linter (what `helm lint --strict` runs) on the chart with the options' values
// and returns every message at warning severity or above as an error.
func Lint(chartDir string, opts Options) error {
	user, err := UserValues(opts)
	if err != nil {
		return err
	}
	kv, err := chartutil.ParseKubeVersion(KubeVersion)
	if err != nil {
		return fmt.Errorf("kube version: %w", err)
	}
	res := lint.AllWithKubeVersion(chartDir, user, opts.namespace(), kv)
	var problems []string
	for _, m := range res.Messages {
		if m.Severity >= support.WarningSev {
			problems = append(problems, m.Error())
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("helm lint %s: %s", chartDir, strings.Join(problems, "; "))
	}
	return nil
}
