package legacy

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"

	"github.com/schnitzel-stream/schnitzel/packet"
)

// loadYAML reads one config layer; its top level must be a mapping.
func loadYAML(path string) (*packet.Map, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var raw any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("config %s: invalid YAML: %w", path, err)
	}
	if raw == nil {
		return packet.NewMap(0), nil
	}
	m, ok := fromYAML(raw).(*packet.Map)
	if !ok {
		return nil, fmt.Errorf("config %s: top-level YAML must be a mapping", path)
	}
	return m, nil
}

// fromYAML turns go-yaml values into JSON-like values; mapping keys are
// sorted so that logs of the settings are stable.
func fromYAML(v any) any {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		m := packet.NewMap(len(x))
		for _, k := range keys {
			m.Set(k, fromYAML(x[k]))
		}
		return m
	case map[any]any:
		conv := make(map[string]any, len(x))
		for k, e := range x {
			conv[fmt.Sprint(k)] = e
		}
		return fromYAML(conv)
	case []any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = fromYAML(x[i])
		}
		return out
	case int:
		return int64(x)
	case int64:
		return x
	case uint64:
		if x > math.MaxInt64 {
			return new(big.Int).SetUint64(x)
		}
		return int64(x)
	case float32:
		return float64(x)
	}
	return v
}

// deepMerge returns dst with src merged in: mappings merge recursively,
// anything else in src replaces (upstream's _deep_merge).
func deepMerge(dst, src *packet.Map) *packet.Map {
	out := dst.Clone(src.Len())
	for _, e := range src.Entries() {
		sm, sIsMap := e.Value.(*packet.Map)
		cur, _ := out.Get(e.Key)
		dm, dIsMap := cur.(*packet.Map)
		if sIsMap && dIsMap {
			out.Set(e.Key, deepMerge(dm, sm))
		} else {
			out.Set(e.Key, e.Value)
		}
	}
	return out
}

// loadLayers builds the merged config of dir: default.yaml then
// cameras.yaml (or, when neither exists, every *.yaml but dev/prod by
// name), then the app.env profile (dev.yaml or prod.yaml), then the AI_*
// environment overrides.
func loadLayers(dir string, getenv func(string) string) (*packet.Map, error) {
	cfg := packet.NewMap(0)
	found := false
	for _, name := range []string{"default.yaml", "cameras.yaml"} {
		layer, err := loadYAML(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		cfg, found = deepMerge(cfg, layer), true
	}
	if !found {
		files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		sort.Strings(files)
		for _, f := range files {
			if b := filepath.Base(f); b == "dev.yaml" || b == "prod.yaml" {
				continue
			}
			layer, err := loadYAML(f)
			if err != nil {
				return nil, err
			}
			cfg = deepMerge(cfg, layer)
		}
	}
	if env, _ := sub(cfg, "app").Get("env"); env == "dev" || env == "prod" {
		layer, err := loadYAML(filepath.Join(dir, env.(string)+".yaml"))
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, err
		default:
			cfg = deepMerge(cfg, layer)
		}
	}
	return applyEnv(cfg, getenv), nil
}

// envKeys maps upstream's AI_* variables to config paths, in upstream's
// order (so AI_LOG_LEVEL wins over AI_LOGGING_LEVEL).
var envKeys = []struct {
	name string
	path []string
}{
	{"AI_EVENTS_POST_URL", []string{"events", "post_url"}},
	{"AI_INGEST_FPS_LIMIT", []string{"ingest", "fps_limit"}},
	{"AI_EVENTS_SNAPSHOT_BASE_DIR", []string{"events", "snapshot", "base_dir"}},
	{"AI_EVENTS_SNAPSHOT_PUBLIC_PREFIX", []string{"events", "snapshot", "public_prefix"}},
	{"AI_EVENTS_EMITTER_ADAPTER", []string{"events", "emitter_adapter"}},
	{"AI_SOURCE_TYPE", []string{"source", "type"}},
	{"AI_SOURCE_ADAPTER", []string{"source", "adapter"}},
	{"AI_SENSOR_ENABLED", []string{"sensor", "enabled"}},
	{"AI_SENSOR_TYPE", []string{"sensor", "type"}},
	{"AI_SENSOR_ADAPTER", []string{"sensor", "adapter"}},
	{"AI_SENSOR_ADAPTERS", []string{"sensor", "adapters"}},
	{"AI_SENSOR_TOPIC", []string{"sensor", "topic"}},
	{"AI_SENSOR_QUEUE_SIZE", []string{"sensor", "queue_size"}},
	{"AI_SENSOR_TIME_WINDOW_MS", []string{"sensor", "time_window_ms"}},
	{"AI_SENSOR_EMIT_EVENTS", []string{"sensor", "emit_events"}},
	{"AI_SENSOR_EMIT_FUSED_EVENTS", []string{"sensor", "emit_fused_events"}},
	{"AI_LOGGING_LEVEL", []string{"logging", "level"}},
	{"AI_LOGGING_FORMAT", []string{"logging", "format"}},
	{"AI_LOG_LEVEL", []string{"logging", "level"}},
	{"AI_LOG_FORMAT", []string{"logging", "format"}},
	{"AI_LOG_MAX_BYTES", []string{"logging", "max_bytes"}},
	{"AI_LOG_BACKUP_COUNT", []string{"logging", "backup_count"}},
	{"AI_MODEL_MODE", []string{"model", "mode"}},
	{"AI_MODEL_ADAPTER", []string{"model", "adapter"}},
	{"AI_ZONES_SOURCE", []string{"zones", "source"}},
	{"AI_RTSP_TIMEOUT_SEC", []string{"rtsp", "timeout_sec"}},
	{"AI_RTSP_MAX_ATTEMPTS", []string{"rtsp", "max_attempts"}},
	{"AI_RTSP_BASE_DELAY_SEC", []string{"rtsp", "base_delay_sec"}},
	{"AI_RTSP_MAX_DELAY_SEC", []string{"rtsp", "max_delay_sec"}},
	{"AI_RTSP_TRANSPORT", []string{"rtsp", "transport"}},
}

// coerceEnv types an environment value as upstream does: true/false (any
// case), then an integer, then a float, else the string.
func coerceEnv(s string) any {
	switch strings.ToLower(s) {
	case "true":
		return true
	case "false":
		return false
	}
	t := strings.TrimSpace(s)
	if n, err := strconv.ParseInt(t, 10, 64); err == nil {
		return n
	}
	if f, err := strconv.ParseFloat(t, 64); err == nil {
		return f
	}
	return s
}

// applyEnv merges the set AI_* variables over cfg. An empty variable
// counts as unset (upstream checked presence; getenv cannot tell).
func applyEnv(cfg *packet.Map, getenv func(string) string) *packet.Map {
	over := packet.NewMap(0)
	set := false
	for _, k := range envKeys {
		v := getenv(k.name)
		if v == "" {
			continue
		}
		set = true
		cur := over
		for _, p := range k.path[:len(k.path)-1] {
			next, ok := cur.Get(p)
			m, isMap := next.(*packet.Map)
			if !ok || !isMap {
				m = packet.NewMap(1)
				cur.Set(p, m)
			}
			cur = m
		}
		cur.Set(k.path[len(k.path)-1], coerceEnv(v))
	}
	if !set {
		return cfg
	}
	return deepMerge(cfg, over)
}

// sub returns cfg[key] when it is a mapping, else an empty mapping (the
// `cfg.get(key, {})` of upstream).
func sub(cfg *packet.Map, key string) *packet.Map {
	v, _ := cfg.Get(key)
	if m, ok := v.(*packet.Map); ok {
		return m
	}
	return packet.NewMap(0)
}

// validate applies upstream's validate_config checks.
func validate(cfg *packet.Map) error {
	for _, k := range []string{"app", "ingest", "events"} {
		if _, ok := cfg.Get(k); !ok {
			return fmt.Errorf("missing required config section: %s", k)
		}
	}
	model := sub(cfg, "model")
	if mode, ok := model.Get("mode"); ok && mode != "real" && mode != "mock" {
		return errors.New("model.mode must be 'real' or 'mock'")
	}
	if a, ok := model.Get("adapter"); ok && a != nil {
		if _, isStr := a.(string); !isStr {
			return errors.New("model.adapter must be str")
		}
	}
	if v, ok := sub(cfg, "ingest").Get("fps_limit"); ok {
		switch v.(type) {
		case int64, float64:
		default:
			return errors.New("ingest.fps_limit must be number")
		}
	}
	events := sub(cfg, "events")
	if v, ok := events.Get("post_url"); ok {
		if _, isStr := v.(string); !isStr {
			return errors.New("events.post_url must be str")
		}
	}
	if v, ok := events.Get("emitter_adapter"); ok && v != nil {
		if _, isStr := v.(string); !isStr {
			return errors.New("events.emitter_adapter must be str")
		}
	}
	if snap := sub(events, "snapshot"); snap.Len() > 0 {
		if v, _ := snap.Get("base_dir"); v == nil {
			return errors.New("events.snapshot.base_dir required when snapshot is configured")
		}
	}
	cams, hasCams := cfg.Get("cameras")
	if hasCams && cams != nil {
		if _, ok := cams.([]any); !ok {
			return errors.New("cameras must be list")
		}
	}
	if v, ok := cfg.Get("source"); ok && v != nil {
		gs, isMap := v.(*packet.Map)
		if !isMap {
			if packet.Truthy(v) {
				return errors.New("source must be mapping")
			}
		} else {
			if t, ok := gs.Get("type"); ok && t != nil {
				ts, isStr := t.(string)
				if !isStr {
					return errors.New("source.type must be str")
				}
				if !validSourceType(ts) {
					return fmt.Errorf("unsupported source.type: %s", ts)
				}
			}
			if a, ok := gs.Get("adapter"); ok && a != nil {
				if _, isStr := a.(string); !isStr {
					return errors.New("source.adapter must be str")
				}
			}
		}
	}
	if zs, ok := sub(cfg, "zones").Get("source"); ok && zs != nil {
		s, isStr := zs.(string)
		if !isStr {
			return errors.New("zones.source must be str")
		}
		if s != "api" && s != "file" && s != "none" {
			return errors.New("zones.source must be one of: api, file, none")
		}
	}
	if err := validateSensor(sub(cfg, "sensor")); err != nil {
		return err
	}
	seen := map[string]bool{}
	list, _ := cams.([]any)
	for i, c := range list {
		cam, ok := c.(*packet.Map)
		if !ok {
			return fmt.Errorf("cameras[%d]: camera item must be mapping", i)
		}
		if id := cameraID(cam); id != "" {
			if seen[id] {
				return fmt.Errorf("duplicate camera id: %s", id)
			}
			seen[id] = true
		}
		src, ok := cam.Get("source")
		sm, isMap := src.(*packet.Map)
		if !ok || !isMap {
			continue
		}
		st := "file"
		if t, ok := sm.Get("type"); ok {
			s, isStr := t.(string)
			if !isStr {
				return fmt.Errorf("cameras[%d]: camera source.type must be str", i)
			}
			st = s
		}
		if !validSourceType(st) {
			return fmt.Errorf("cameras[%d]: unsupported camera source.type: %s", i, st)
		}
		if st == "webcam" {
			if idx, ok := sm.Get("index"); ok && idx != nil {
				if _, isInt := idx.(int64); !isInt {
					return fmt.Errorf("cameras[%d]: webcam source.index must be int", i)
				}
			}
		}
		if st == "plugin" {
			if a, _ := sm.Get("adapter"); !nonBlank(a) {
				return fmt.Errorf("cameras[%d]: plugin source requires source.adapter (module:ClassName)", i)
			}
		}
	}
	return nil
}

func validateSensor(s *packet.Map) error {
	strOrNil := func(k string) error {
		if v, ok := s.Get(k); ok && v != nil {
			if _, isStr := v.(string); !isStr {
				return fmt.Errorf("sensor.%s must be str", k)
			}
		}
		return nil
	}
	boolOrNil := func(k string) error {
		if v, ok := s.Get(k); ok && v != nil {
			if _, isBool := v.(bool); !isBool {
				return fmt.Errorf("sensor.%s must be bool", k)
			}
		}
		return nil
	}
	posInt := func(k string) error {
		if v, ok := s.Get(k); ok && v != nil {
			if n, isInt := v.(int64); !isInt || n <= 0 {
				return fmt.Errorf("sensor.%s must be positive int", k)
			}
		}
		return nil
	}
	for _, err := range []error{boolOrNil("enabled"), strOrNil("type"), strOrNil("adapter"), strOrNil("topic"),
		posInt("queue_size"), posInt("time_window_ms"), boolOrNil("emit_events"), boolOrNil("emit_fused_events")} {
		if err != nil {
			return err
		}
	}
	hasMulti := false
	if v, ok := s.Get("adapters"); ok && v != nil {
		switch x := v.(type) {
		case string:
			for _, p := range strings.Split(x, ",") {
				hasMulti = hasMulti || strings.TrimSpace(p) != ""
			}
		case []any:
			for _, it := range x {
				str, isStr := it.(string)
				if !isStr {
					return errors.New("sensor.adapters items must be str")
				}
				if strings.TrimSpace(str) == "" {
					return errors.New("sensor.adapters items must be non-empty str")
				}
				hasMulti = true
			}
		default:
			return errors.New("sensor.adapters must be list[str] or comma-separated str")
		}
	}
	a, _ := s.Get("adapter")
	if en, _ := s.Get("enabled"); en == true && !nonBlank(a) && !hasMulti {
		return errors.New("enabled sensor requires sensor.adapter or sensor.adapters (AI_SENSOR_ADAPTER / AI_SENSOR_ADAPTERS)")
	}
	return nil
}

func validSourceType(s string) bool {
	switch s {
	case "file", "rtsp", "webcam", "plugin":
		return true
	}
	return false
}

func nonBlank(v any) bool {
	s, ok := v.(string)
	return ok && strings.TrimSpace(s) != ""
}

// cameraID is a camera's id, else camera_id, as a string ("" when neither
// is set or truthy).
func cameraID(cam *packet.Map) string {
	for _, k := range []string{"id", "camera_id"} {
		if v, ok := cam.Get(k); ok && packet.Truthy(v) {
			return packet.PyStr(v)
		}
	}
	return ""
}
