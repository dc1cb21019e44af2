// argocd-health runs Argo CD health checks (health.lua) the way Argo CD runs them (vm.go),
// so Ferry's checks are tested in Argo CD's Lua runtime, not a look-alike.
//
//	argocd-health run --config ARGOCD_CM.yaml [FILE...]
//	    each object's health from the argocd-cm ConfigMap's
//	    resource.customizations.health.<group>_<kind> key for its group and kind (with
//	    resource.customizations.useOpenLibs.<group>_<kind>, default false, as Argo CD reads it)
//	argocd-health run --script health.lua [--open-libs] [FILE...]
//	argocd-health test DIR
//	    every health.lua under DIR against its health_test.yaml, as Argo CD's own
//	    TestLuaHealthScript does; each case is run with the standard libraries (as Argo CD's
//	    test and built-in scripts) and without (as an argocd-cm customization), and must give
//	    the expected status and message both times
//
// FILE (none or "-": stdin) holds YAML or JSON: objects separated by "---", or a List. Each
// object gives one JSON line {"kind", "namespace", "name", "status", "message"}. Exit 1,
// naming the file, when an object cannot be read or its check fails to run.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

const customizationsPrefix = "resource.customizations"

func main() {
	if len(os.Args) < 2 {
		fail("usage: argocd-health run (--config FILE | --script FILE) [FILE...] | test DIR")
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = run(os.Args[2:])
	case "test":
		err = test(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: run or test", os.Args[1])
	}
	if err != nil {
		fail(err.Error())
	}
}

func fail(message string) {
	fmt.Fprintf(os.Stderr, "argocd-health: %s\n", message)
	os.Exit(1)
}

// override is the health part of Argo CD's v1alpha1.ResourceOverride.
type override struct {
	HealthLua   string
	UseOpenLibs bool
}

func run(args []string) error {
	flags := flag.NewFlagSet("run", flag.ContinueOnError)
	config := flags.String("config", "", "an argocd-cm ConfigMap (YAML)")
	script := flags.String("script", "", "a health.lua")
	openLibs := flags.Bool("open-libs", false, "with --script: the standard libraries too")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if (*config == "") == (*script == "") {
		return errors.New("run: give one of --config or --script")
	}
	overrides := map[string]override{}
	if *config != "" {
		var err error
		if overrides, err = readConfigMap(*config); err != nil {
			return fmt.Errorf("%s: %w", *config, err)
		}
	} else {
		text, err := os.ReadFile(*script)
		if err != nil {
			return err
		}
		overrides["*"] = override{HealthLua: string(text), UseOpenLibs: *openLibs}
	}
	files := flags.Args()
	if len(files) == 0 {
		files = []string{"-"}
	}
	out := json.NewEncoder(os.Stdout)
	for _, name := range files {
		objects, err := readObjects(name)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		for _, obj := range objects {
			kind, _ := obj["kind"].(string)
			meta, _ := obj["metadata"].(map[string]any)
			key := configMapKey(obj)
			found, ok := overrides[key]
			if *script != "" {
				found, ok = overrides["*"], true
			}
			if !ok || found.HealthLua == "" {
				return fmt.Errorf("%s: %s %v: no health customization for %s", name, kind,
					meta["name"], key)
			}
			result, err := VM{UseOpenLibs: found.UseOpenLibs}.ExecuteHealthLua(obj, found.HealthLua)
			if err != nil {
				return fmt.Errorf("%s: %s %v: %w", name, kind, meta["name"], err)
			}
			if err := out.Encode(map[string]any{
				"kind": kind, "namespace": meta["namespace"], "name": meta["name"],
				"status": result.Status, "message": result.Message,
			}); err != nil {
				return err
			}
		}
	}
	return nil
}

// configMapKey is Argo CD's GetConfigMapKey: "group/Kind", or "Kind" for the core group.
func configMapKey(obj map[string]any) string {
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	group := ""
	if i := strings.Index(apiVersion, "/"); i >= 0 {
		group = apiVersion[:i]
	}
	if group == "" {
		return kind
	}
	return group + "/" + kind
}

// readConfigMap reads the split keys resource.customizations.<type>.<group_kind> as Argo CD's
// appendResourceOverridesFromSplitKeys does (health and useOpenLibs; others are not ours).
func readConfigMap(path string) (map[string]override, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cm struct {
		Kind     string                `json:"kind"`
		Metadata struct{ Name string } `json:"metadata"`
		Data     map[string]string     `json:"data"`
	}
	if err := yaml.Unmarshal(text, &cm); err != nil {
		return nil, err
	}
	if cm.Kind != "ConfigMap" || cm.Metadata.Name != "argocd-cm" {
		return nil, fmt.Errorf("not the argocd-cm ConfigMap (kind %q, name %q)", cm.Kind,
			cm.Metadata.Name)
	}
	overrides := map[string]override{}
	for k, v := range cm.Data {
		if !strings.HasPrefix(k, customizationsPrefix) {
			continue
		}
		parts := strings.SplitN(k, ".", 4)
		if len(parts) < 4 {
			continue
		}
		key, err := convertToOverrideKey(parts[3])
		if err != nil {
			return nil, err
		}
		found := overrides[key]
		switch parts[2] {
		case "health":
			found.HealthLua = v
		case "useOpenLibs":
			if found.UseOpenLibs, err = strconv.ParseBool(v); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("%s: only health and useOpenLibs customizations are read here", k)
		}
		overrides[key] = found
	}
	return overrides, nil
}

// convertToOverrideKey is Argo CD's: group_kind to group/kind.
func convertToOverrideKey(groupKind string) (string, error) {
	parts := strings.Split(groupKind, "_")
	if len(parts) == 2 {
		return fmt.Sprintf("%s/%s", parts[0], parts[1]), nil
	} else if len(parts) == 1 && groupKind != "" {
		return groupKind, nil
	}
	return "", fmt.Errorf("group kind should be in format `resource.customizations.<type>.<group_kind>` or resource.customizations.<type>.<kind>`, got group kind: '%s'", groupKind)
}

// readObjects reads a file's objects as Argo CD's health test reads one (sigs.k8s.io/yaml into
// a map); a List gives its items.
func readObjects(name string) ([]map[string]any, error) {
	var text []byte
	var err error
	if name == "-" {
		text, err = io.ReadAll(os.Stdin)
	} else {
		text, err = os.ReadFile(name)
	}
	if err != nil {
		return nil, err
	}
	var objects []map[string]any
	for i, doc := range splitDocuments(text) {
		obj := map[string]any{}
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		if len(obj) == 0 {
			continue
		}
		if items, ok := obj["items"].([]any); ok && strings.HasSuffix(fmt.Sprint(obj["kind"]), "List") {
			for _, item := range items {
				if m, ok := item.(map[string]any); ok {
					objects = append(objects, m)
				}
			}
			continue
		}
		objects = append(objects, obj)
	}
	return objects, nil
}

func splitDocuments(text []byte) [][]byte {
	var docs [][]byte
	var current bytes.Buffer
	for _, line := range bytes.SplitAfter(text, []byte("\n")) {
		if bytes.Equal(bytes.TrimRight(line, "\r\n"), []byte("---")) {
			docs = append(docs, bytes.Clone(current.Bytes()))
			current.Reset()
			continue
		}
		current.Write(line)
	}
	return append(docs, current.Bytes())
}

// The health_test.yaml of a resource customization, as Argo CD's health_test.go reads it.
type testStructure struct {
	Tests []individualTest `json:"tests"`
}

type individualTest struct {
	InputPath    string       `json:"inputPath"`
	HealthStatus HealthStatus `json:"healthStatus"`
}

func test(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: argocd-health test DIR")
	}
	passed, failed := 0, 0
	err := filepath.Walk(args[0], func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if info.IsDir() || info.Name() != "health.lua" {
			return nil
		}
		dir := filepath.Dir(path)
		script, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		spec, err := os.ReadFile(filepath.Join(dir, "health_test.yaml"))
		if err != nil {
			return err
		}
		var tests testStructure
		if err := yaml.UnmarshalStrict(spec, &tests); err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(dir, "health_test.yaml"), err)
		}
		if len(tests.Tests) == 0 {
			return fmt.Errorf("%s: no tests", filepath.Join(dir, "health_test.yaml"))
		}
		for _, tc := range tests.Tests {
			input := filepath.Join(dir, tc.InputPath)
			objects, err := readObjects(input)
			if err != nil {
				return fmt.Errorf("%s: %w", input, err)
			}
			if len(objects) != 1 {
				return fmt.Errorf("%s: %d objects, want one", input, len(objects))
			}
			for _, openLibs := range []bool{true, false} {
				got, err := VM{UseOpenLibs: openLibs}.ExecuteHealthLua(objects[0], string(script))
				status := "ok"
				if err != nil {
					status = "FAIL: " + err.Error()
				} else if *got != tc.HealthStatus {
					status = fmt.Sprintf("FAIL: got %+v, want %+v", *got, tc.HealthStatus)
				}
				if status == "ok" {
					passed++
				} else {
					failed++
				}
				fmt.Printf("%s openLibs=%v: %s\n", input, openLibs, status)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Printf("argocd-health: %d cases ok, %d wrong\n", passed, failed)
	if failed > 0 || passed == 0 {
		return fmt.Errorf("%d of %d cases wrong", failed, passed+failed)
	}
	return nil
}
