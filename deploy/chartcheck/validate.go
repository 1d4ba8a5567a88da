package chartcheck

import (
	"errors"
	"fmt"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// newObject returns an empty typed object for every kind the chart and the examples may render.
var kinds = map[schema.GroupVersionKind]func() runtime.Object{
	appsv1.SchemeGroupVersion.WithKind("Deployment"):            func() runtime.Object { return &appsv1.Deployment{} },
	batchv1.SchemeGroupVersion.WithKind("Job"):                  func() runtime.Object { return &batchv1.Job{} },
	corev1.SchemeGroupVersion.WithKind("ConfigMap"):             func() runtime.Object { return &corev1.ConfigMap{} },
	corev1.SchemeGroupVersion.WithKind("Secret"):                func() runtime.Object { return &corev1.Secret{} },
	corev1.SchemeGroupVersion.WithKind("Service"):               func() runtime.Object { return &corev1.Service{} },
	corev1.SchemeGroupVersion.WithKind("ServiceAccount"):        func() runtime.Object { return &corev1.ServiceAccount{} },
	policyv1.SchemeGroupVersion.WithKind("PodDisruptionBudget"): func() runtime.Object { return &policyv1.PodDisruptionBudget{} },
	monitoringv1.SchemeGroupVersion.WithKind("ServiceMonitor"):  func() runtime.Object { return &monitoringv1.ServiceMonitor{} },
	monitoringv1.SchemeGroupVersion.WithKind("PrometheusRule"):  func() runtime.Object { return &monitoringv1.PrometheusRule{} },
}

// Decode decodes one manifest strictly into its typed Kubernetes object: an unknown or misspelt
// field, a duplicate key, a wrong type or an unknown kind is an error naming the object and the
// field.
func Decode(m Manifest) (runtime.Object, error) {
	var head unstructured.Unstructured
	if err := yaml.Unmarshal([]byte(m.Content), &head.Object); err != nil {
		return nil, fmt.Errorf("%s: not YAML: %w", m.Source, err)
	}
	gvk := head.GroupVersionKind()
	where := fmt.Sprintf("%s: %s %q", m.Source, gvk.Kind, head.GetName())
	newObj, ok := kinds[gvk]
	if !ok {
		return nil, fmt.Errorf("%s: unsupported apiVersion/kind %s", where, gvk)
	}
	js, err := yaml.YAMLToJSONStrict([]byte(m.Content))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	// Field names match case-sensitively, as the API server matches them.
	obj := newObj()
	strictErrs, err := kjson.UnmarshalStrict(js, obj)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if len(strictErrs) > 0 {
		return nil, fmt.Errorf("%s: %w", where, errors.Join(strictErrs...))
	}
	if err := checkMeta(head); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return obj, nil
}

// checkMeta checks what every object needs: a valid name and valid labels.
func checkMeta(u unstructured.Unstructured) error {
	var errs []string
	if msgs := validation.IsDNS1123Subdomain(u.GetName()); len(msgs) > 0 {
		errs = append(errs, fmt.Sprintf("metadata.name %q: %s", u.GetName(), strings.Join(msgs, ", ")))
	}
	for k, v := range u.GetLabels() {
		if msgs := validation.IsQualifiedName(k); len(msgs) > 0 {
			errs = append(errs, fmt.Sprintf("label key %q: %s", k, strings.Join(msgs, ", ")))
		}
		if msgs := validation.IsValidLabelValue(v); len(msgs) > 0 {
			errs = append(errs, fmt.Sprintf("label %s value %q: %s", k, v, strings.Join(msgs, ", ")))
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// Set is the decoded objects of one rendering, by kind.
type Set struct {
	Deployments          []*appsv1.Deployment
	Jobs                 []*batchv1.Job
	ConfigMaps           []*corev1.ConfigMap
	Secrets              []*corev1.Secret
	Services             []*corev1.Service
	ServiceAccounts      []*corev1.ServiceAccount
	PodDisruptionBudgets []*policyv1.PodDisruptionBudget
	ServiceMonitors      []*monitoringv1.ServiceMonitor
	PrometheusRules      []*monitoringv1.PrometheusRule
}

// DecodeAll decodes every manifest strictly (see Decode) and checks that the objects fit
// together: see Check. It returns every problem found, not only the first.
func DecodeAll(ms []Manifest) (*Set, error) {
	s := &Set{}
	var errs []error
	for _, m := range ms {
		obj, err := Decode(m)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		switch o := obj.(type) {
		case *appsv1.Deployment:
			s.Deployments = append(s.Deployments, o)
		case *batchv1.Job:
			s.Jobs = append(s.Jobs, o)
		case *corev1.ConfigMap:
			s.ConfigMaps = append(s.ConfigMaps, o)
		case *corev1.Secret:
			s.Secrets = append(s.Secrets, o)
		case *corev1.Service:
			s.Services = append(s.Services, o)
		case *corev1.ServiceAccount:
			s.ServiceAccounts = append(s.ServiceAccounts, o)
		case *policyv1.PodDisruptionBudget:
			s.PodDisruptionBudgets = append(s.PodDisruptionBudgets, o)
		case *monitoringv1.ServiceMonitor:
			s.ServiceMonitors = append(s.ServiceMonitors, o)
		case *monitoringv1.PrometheusRule:
			s.PrometheusRules = append(s.PrometheusRules, o)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}
