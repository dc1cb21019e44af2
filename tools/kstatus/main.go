// kstatus prints the status kstatus (sigs.k8s.io/cli-utils/pkg/kstatus/status) computes for
// each object it reads: the same Compute that Flux, kpt and `kubectl wait`-like tools built on
// cli-utils call. Ferry's tests feed it objects read from a real API server.
//
//	kstatus [FILE...]      YAML or JSON, several documents per file; none or "-": stdin
//
// A document may be one object or a List (kubectl get -o yaml); each object gives one JSON
// line: {"apiVersion", "kind", "namespace", "name", "status", "message", "conditions"}.
// Exit 1, naming the file and document, when one cannot be read or computed.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type line struct {
	APIVersion string             `json:"apiVersion"`
	Kind       string             `json:"kind"`
	Namespace  string             `json:"namespace,omitempty"`
	Name       string             `json:"name"`
	Status     status.Status      `json:"status"`
	Message    string             `json:"message"`
	Conditions []status.Condition `json:"conditions"`
}

func main() {
	files := os.Args[1:]
	if len(files) == 0 {
		files = []string{"-"}
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for _, name := range files {
		if err := computeFile(name, out); err != nil {
			out.Flush()
			fmt.Fprintf(os.Stderr, "kstatus: %s: %v\n", name, err)
			os.Exit(1)
		}
	}
}

func computeFile(name string, out io.Writer) error {
	var in io.Reader = os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	decoder := utilyaml.NewYAMLOrJSONDecoder(in, 4096)
	for doc := 1; ; doc++ {
		var raw json.RawMessage
		if err := decoder.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("document %d: %w", doc, err)
		}
		if len(raw) == 0 || string(raw) == "null" {
			continue // an empty document
		}
		// As the API machinery decodes an object (integers as int64), not as plain JSON.
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil {
			return fmt.Errorf("document %d: %w", doc, err)
		}
		objects := []unstructured.Unstructured{*u}
		if u.IsList() {
			list, err := u.ToList()
			if err != nil {
				return fmt.Errorf("document %d: %w", doc, err)
			}
			objects = list.Items
		}
		for i := range objects {
			if err := compute(&objects[i], out); err != nil {
				return fmt.Errorf("document %d, %s %q: %w", doc, objects[i].GetKind(),
					objects[i].GetName(), err)
			}
		}
	}
}

func compute(u *unstructured.Unstructured, out io.Writer) error {
	result, err := status.Compute(u)
	if err != nil {
		return err
	}
	conditions := result.Conditions
	if conditions == nil {
		conditions = []status.Condition{}
	}
	encoded, err := json.Marshal(line{
		APIVersion: u.GetAPIVersion(), Kind: u.GetKind(), Namespace: u.GetNamespace(),
		Name: u.GetName(), Status: result.Status, Message: result.Message,
		Conditions: conditions,
	})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "%s\n", encoded)
	return err
}
