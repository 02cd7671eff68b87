// Command k8scheck decodes every Kubernetes object of a YAML stream (stdin) into the API's own Go
// types (k8s.io/api), strictly: an unknown field, a mistyped value, a duplicate key or a kind it
// does not know fails, naming the object. Used by tests/integration/test_containers_k8s.py on
// `helm template`'s output; prints one "KIND NAME" line per object.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// The kinds the chart may render, each with its typed object.
var kinds = map[string]func() any{
	"apps/v1/Deployment":                     func() any { return &appsv1.Deployment{} },
	"v1/Service":                             func() any { return &corev1.Service{} },
	"v1/ConfigMap":                           func() any { return &corev1.ConfigMap{} },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
}

func check(doc []byte) (string, error) {
	var meta metav1.PartialObjectMetadata
	if err := yaml.Unmarshal(doc, &meta); err != nil {
		return "", err
	}
	key := meta.APIVersion + "/" + meta.Kind
	newObj, ok := kinds[key]
	if !ok {
		return "", fmt.Errorf("%s %q: not a kind this chart should render", key, meta.Name)
	}
	if err := yaml.UnmarshalStrict(doc, newObj()); err != nil {
		return "", fmt.Errorf("%s %q: %w", key, meta.Name, err)
	}
	return meta.Kind + " " + meta.Name, nil
}

func run(in io.Reader, out io.Writer) error {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(in))
	n := 0
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		line, err := check(doc)
		if err != nil {
			return err
		}
		fmt.Fprintln(out, line)
		n++
	}
	if n == 0 {
		return errors.New("no objects")
	}
	return nil
}

func stripComments(doc []byte) []byte {
	var keep [][]byte
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			keep = append(keep, line)
		}
	}
	return bytes.Join(keep, []byte("\n"))
}

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "k8scheck:", err)
		os.Exit(1)
	}
}
