package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// EnvPrefix starts every environment variable Custodian reads.
const EnvPrefix = "CUSTODIAN_"

// nonKeyEnv lists CUSTODIAN_ variables that are not config keys: process
// flags, secrets read by their owners, and test switches.
var nonKeyEnv = map[string]bool{
	"CUSTODIAN_CONFIG":                       true, // --config
	"CUSTODIAN_DATA":                         true, // --data (also data_dir)
	"CUSTODIAN_TOKEN":                        true, // CLI clients
	"CUSTODIAN_TRANSCRIPTION_OPENAI_API_KEY": true, // secret for the OpenAI-compatible engine
	"CUSTODIAN_KEYRING_PASSPHRASE":           true, // reserved
}

// IsNonKeyEnv reports whether name is a CUSTODIAN_ variable that is not a
// config key (flags, secrets, test switches).
func IsNonKeyEnv(name string) bool {
	return nonKeyEnv[name] || strings.HasPrefix(name, "CUSTODIAN_TEST_") || strings.HasPrefix(name, "CUSTODIAN_INTERNAL_") ||
		name == "CUSTODIAN_NETNS" // set by internal/netns inside the test namespace
}

// EnvKeys returns every CUSTODIAN_ variable that maps to a config key, with
// its yaml path, sorted. Used by documentation tests.
func EnvKeys() map[string]string {
	out := map[string]string{}
	walk(reflect.ValueOf(&Config{}).Elem(), nil, func(path []string, _ reflect.Value) {
		out[envName(path)] = strings.Join(path, ".")
	})
	return out
}

func envName(path []string) string {
	return EnvPrefix + strings.ToUpper(strings.Join(path, "_"))
}

// walk calls fn for every leaf of v (structs are descended, everything else
// is a leaf) with its yaml key path.
func walk(v reflect.Value, path []string, fn func([]string, reflect.Value)) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		p := append(append([]string{}, path...), tag)
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct && fv.Type() != reflect.TypeOf(yaml.Node{}) {
			walk(fv, p, fn)
			continue
		}
		fn(p, fv)
	}
}

// ApplyEnv overrides cfg from CUSTODIAN_* variables in environ ("K=V"
// strings, as from os.Environ). An unknown CUSTODIAN_ variable is an error
// naming it, so a typo never silently leaves a default in force.
func ApplyEnv(cfg *Config, environ []string) error {
	vars := map[string]string{}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(k, EnvPrefix) {
			vars[k] = v
		}
	}
	if v, ok := vars["CUSTODIAN_DATA"]; ok && v != "" {
		cfg.DataDir = v
	}
	known := map[string]bool{}
	var err error
	walk(reflect.ValueOf(cfg).Elem(), nil, func(path []string, fv reflect.Value) {
		name := envName(path)
		known[name] = true
		val, ok := vars[name]
		if !ok || err != nil {
			return
		}
		if e := setFromString(fv, val); e != nil {
			err = fmt.Errorf("%s (%s): %w", name, strings.Join(path, "."), e)
		}
	})
	if err != nil {
		return err
	}
	var unknown []string
	for k := range vars {
		if !known[k] && !IsNonKeyEnv(k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("unknown environment variable %s: not a config key", strings.Join(unknown, ", "))
	}
	return nil
}

func setFromString(fv reflect.Value, s string) error {
	switch fv.Interface().(type) {
	case time.Duration:
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		fv.SetInt(int64(d))
		return nil
	case yaml.Node:
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(s), &n); err != nil {
			return err
		}
		if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
			n = *n.Content[0]
		}
		fv.Set(reflect.ValueOf(n))
		return nil
	}
	switch fv.Kind() {
	case reflect.String:
		fv.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		fv.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, err := strconv.ParseInt(s, 10, fv.Type().Bits())
		if err != nil {
			return err
		}
		fv.SetInt(n)
	case reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uint:
		n, err := strconv.ParseUint(s, 10, fv.Type().Bits())
		if err != nil {
			return err
		}
		fv.SetUint(n)
	case reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return err
		}
		fv.SetFloat(f)
	case reflect.Slice:
		var items []string
		for _, it := range strings.Split(s, ",") {
			if it = strings.TrimSpace(it); it != "" {
				items = append(items, it)
			}
		}
		fv.Set(reflect.ValueOf(items))
	case reflect.Map:
		m := map[string]string{}
		for _, it := range strings.Split(s, ",") {
			if it = strings.TrimSpace(it); it == "" {
				continue
			}
			k, v, ok := strings.Cut(it, "=")
			if !ok {
				return fmt.Errorf("%q is not key=value", it)
			}
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
		fv.Set(reflect.ValueOf(m))
	default:
		return fmt.Errorf("unsupported type %s", fv.Type())
	}
	return nil
}
