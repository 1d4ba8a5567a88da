package chartcheck

import (
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Check reports objects of the set that do not fit together: selectors that select no pod,
// probes and Services aimed at ports no container names, mounts of undeclared volumes,
// references to keys missing from a rendered Secret or ConfigMap, a termination grace
// period not above the daemon's drain timeout, and a PodDisruptionBudget that allows no
// eviction of the replicas it selects. Objects the set does not hold (existing Secrets
// and ConfigMaps) are assumed to exist.
func (s *Set) Check() error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	secrets := map[string]map[string]bool{}
	for _, sec := range s.Secrets {
		keys := map[string]bool{}
		for k := range sec.StringData {
			keys[k] = true
		}
		for k := range sec.Data {
			keys[k] = true
		}
		secrets[sec.Name] = keys
	}
	configMaps := map[string]map[string]bool{}
	for _, cm := range s.ConfigMaps {
		keys := map[string]bool{}
		for k := range cm.Data {
			keys[k] = true
		}
		configMaps[cm.Name] = keys
	}
	hasKey := func(m map[string]map[string]bool, name, key string) bool {
		keys, rendered := m[name]
		return !rendered || keys[key]
	}

	type pods struct {
		owner    string
		labels   labels.Set
		spec     *corev1.PodSpec
		replicas int // -1 when the owner does not say
	}
	var all []pods
	for _, d := range s.Deployments {
		where := "Deployment " + d.Name
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil || d.Spec.Selector == nil || sel.Empty() {
			fail("%s: spec.selector is missing or invalid: %v", where, err)
		} else if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			fail("%s: spec.selector does not select the pod template's labels", where)
		}
		replicas := 1 // the Deployment's default
		if d.Spec.Replicas != nil {
			replicas = int(*d.Spec.Replicas)
		}
		all = append(all, pods{where, d.Spec.Template.Labels, &d.Spec.Template.Spec, replicas})
	}
	for _, j := range s.Jobs {
		all = append(all, pods{"Job " + j.Name, j.Spec.Template.Labels, &j.Spec.Template.Spec, -1})
	}

	for _, p := range all {
		volumes := map[string]corev1.Volume{}
		for _, v := range p.spec.Volumes {
			volumes[v.Name] = v
			if v.ConfigMap != nil {
				for _, it := range v.ConfigMap.Items {
					if !hasKey(configMaps, v.ConfigMap.Name, it.Key) {
						fail("%s: volume %s: ConfigMap %s has no key %s", p.owner, v.Name, v.ConfigMap.Name, it.Key)
					}
				}
			}
			if v.Secret != nil {
				for _, it := range v.Secret.Items {
					if !hasKey(secrets, v.Secret.SecretName, it.Key) {
						fail("%s: volume %s: Secret %s has no key %s", p.owner, v.Name, v.Secret.SecretName, it.Key)
					}
				}
			}
		}
		containers := append(append([]corev1.Container{}, p.spec.InitContainers...), p.spec.Containers...)
		if len(p.spec.Containers) == 0 {
			fail("%s: no containers", p.owner)
		}
		for _, c := range containers {
			where := fmt.Sprintf("%s: container %s", p.owner, c.Name)
			if c.Image == "" {
				fail("%s: no image", where)
			}
			for _, m := range c.VolumeMounts {
				if _, ok := volumes[m.Name]; !ok {
					fail("%s: mounts undeclared volume %s", where, m.Name)
				}
			}
			for _, e := range c.Env {
				if e.ValueFrom == nil {
					continue
				}
				if r := e.ValueFrom.SecretKeyRef; r != nil && !hasKey(secrets, r.Name, r.Key) {
					fail("%s: env %s: Secret %s has no key %s", where, e.Name, r.Name, r.Key)
				}
				if r := e.ValueFrom.ConfigMapKeyRef; r != nil && !hasKey(configMaps, r.Name, r.Key) {
					fail("%s: env %s: ConfigMap %s has no key %s", where, e.Name, r.Name, r.Key)
				}
			}
			for name, probe := range map[string]*corev1.Probe{"startupProbe": c.StartupProbe, "livenessProbe": c.LivenessProbe, "readinessProbe": c.ReadinessProbe} {
				if probe == nil || probe.HTTPGet == nil {
					continue
				}
				if !containerHasPort(c, probe.HTTPGet.Port) {
					fail("%s: %s aims at port %s, which the container does not declare", where, name, probe.HTTPGet.Port.String())
				}
			}
			for _, e := range c.Env {
				if e.Name != "PROJECTOR_DRAIN_TIMEOUT" {
					continue
				}
				drain, err := time.ParseDuration(e.Value)
				if err != nil {
					fail("%s: env PROJECTOR_DRAIN_TIMEOUT %q: %v", where, e.Value, err)
					continue
				}
				grace := 30 * time.Second // Kubernetes' default
				if p.spec.TerminationGracePeriodSeconds != nil {
					grace = time.Duration(*p.spec.TerminationGracePeriodSeconds) * time.Second
				}
				if grace <= drain {
					fail("%s: terminationGracePeriodSeconds %s is not above PROJECTOR_DRAIN_TIMEOUT %s", p.owner, grace, drain)
				}
			}
		}
	}

	selects := func(sel labels.Selector) []pods {
		var out []pods
		for _, p := range all {
			if sel.Matches(p.labels) {
				out = append(out, p)
			}
		}
		return out
	}

	for _, svc := range s.Services {
		where := "Service " + svc.Name
		if len(svc.Spec.Selector) == 0 {
			fail("%s: no selector", where)
			continue
		}
		matched := selects(labels.SelectorFromSet(svc.Spec.Selector))
		if len(matched) == 0 {
			fail("%s: selector %v selects no pod", where, svc.Spec.Selector)
			continue
		}
		for _, port := range svc.Spec.Ports {
			for _, p := range matched {
				found := false
				for _, c := range p.spec.Containers {
					if containerHasPort(c, port.TargetPort) {
						found = true
					}
				}
				if !found {
					fail("%s: port %s targets %s, which %s does not declare", where, port.Name, port.TargetPort.String(), p.owner)
				}
			}
		}
	}

	for _, pdb := range s.PodDisruptionBudgets {
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		matched := selects(sel)
		if err != nil || sel.Empty() || len(matched) == 0 {
			fail("PodDisruptionBudget %s: selector selects no pod (%v)", pdb.Name, err)
			continue
		}
		// A budget that keeps every replica blocks every eviction: kubectl drain hangs.
		for _, p := range matched {
			if p.replicas < 0 || pdb.Spec.MinAvailable == nil {
				continue
			}
			min, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MinAvailable, p.replicas, true)
			if err != nil {
				fail("PodDisruptionBudget %s: minAvailable %s: %v", pdb.Name, pdb.Spec.MinAvailable.String(), err)
			} else if min >= p.replicas {
				fail("PodDisruptionBudget %s: minAvailable %s of the %d replicas of %s allows no eviction (kubectl drain would hang)", pdb.Name, pdb.Spec.MinAvailable.String(), p.replicas, p.owner)
			}
		}
	}

	for _, sm := range s.ServiceMonitors {
		where := "ServiceMonitor " + sm.Name
		sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
		if err != nil || sel.Empty() {
			fail("%s: selector is missing or invalid: %v", where, err)
			continue
		}
		found := false
		for _, svc := range s.Services {
			if !sel.Matches(labels.Set(svc.Labels)) {
				continue
			}
			found = true
			for _, ep := range sm.Spec.Endpoints {
				if !serviceHasPort(svc, ep.Port) {
					fail("%s: endpoint port %q is not a port of Service %s", where, ep.Port, svc.Name)
				}
			}
		}
		if !found {
			fail("%s: selector selects no Service", where)
		}
		if len(sm.Spec.Endpoints) == 0 {
			fail("%s: no endpoints", where)
		}
	}

	for _, pr := range s.PrometheusRules {
		if len(pr.Spec.Groups) == 0 {
			fail("PrometheusRule %s: no rule groups", pr.Name)
		}
		for _, g := range pr.Spec.Groups {
			for i, r := range g.Rules {
				if r.Alert == "" && r.Record == "" {
					fail("PrometheusRule %s: group %s rule %d has neither alert nor record", pr.Name, g.Name, i)
				}
				if r.Expr.String() == "" {
					fail("PrometheusRule %s: group %s rule %d has no expr", pr.Name, g.Name, i)
				}
			}
		}
	}
	return errors.Join(errs...)
}

func containerHasPort(c corev1.Container, port intstr.IntOrString) bool {
	for _, p := range c.Ports {
		if port.Type == intstr.String && p.Name == port.StrVal {
			return true
		}
		if port.Type == intstr.Int && p.ContainerPort == port.IntVal {
			return true
		}
	}
	return false
}

func serviceHasPort(svc *corev1.Service, name string) bool {
	for _, p := range svc.Spec.Ports {
		if p.Name == name {
			return true
		}
	}
	return false
}

// CheckHardened reports what is missing from the container's security settings, taking the
// pod's settings into account: it must run as non-root, with a read-only root filesystem, no
// privilege escalation, every capability dropped and the RuntimeDefault seccomp profile.
func CheckHardened(pod *corev1.PodSpec, c corev1.Container) error {
	var errs []error
	where := "container " + c.Name
	sc := c.SecurityContext
	psc := pod.SecurityContext
	if sc == nil {
		return fmt.Errorf("%s: no securityContext", where)
	}
	nonRoot := (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (sc.RunAsNonRoot == nil && psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
	if !nonRoot {
		errs = append(errs, fmt.Errorf("%s: runAsNonRoot is not true", where))
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		errs = append(errs, fmt.Errorf("%s: readOnlyRootFilesystem is not true", where))
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		errs = append(errs, fmt.Errorf("%s: allowPrivilegeEscalation is not false", where))
	}
	if sc.Privileged != nil && *sc.Privileged {
		errs = append(errs, fmt.Errorf("%s: privileged", where))
	}
	dropsAll := false
	if sc.Capabilities != nil {
		for _, cp := range sc.Capabilities.Drop {
			if cp == "ALL" {
				dropsAll = true
			}
		}
		if len(sc.Capabilities.Add) > 0 {
			errs = append(errs, fmt.Errorf("%s: adds capabilities %v", where, sc.Capabilities.Add))
		}
	}
	if !dropsAll {
		errs = append(errs, fmt.Errorf("%s: capabilities do not drop ALL", where))
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil && psc != nil {
		seccomp = psc.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		errs = append(errs, fmt.Errorf("%s: seccomp profile is not RuntimeDefault", where))
	}
	return errors.Join(errs...)
}
