package nodes

import (
	"context"
	"fmt"
	"strings"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/packs/vision/event"
	"github.com/schnitzel-stream/schnitzel/packs/vision/zones"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// ZoneAPIConfig is ZonePolicyNode's api_cfg (upstream's zones.api keys).
type ZoneAPIConfig struct {
	BaseURL         string         `yaml:"base_url" doc:"Zone API base URL, e.g. http://backend:8080 (trailing slashes trimmed)."`
	GetPathTemplate string         `yaml:"get_path_template" doc:"Path appended to base_url; {site_id} and {camera_id} are substituted."`
	TimeoutSec      plugin.Seconds `yaml:"timeout_sec" doc:"HTTP timeout of one fetch."`
	ErrorBackoffSec plugin.Seconds `yaml:"error_backoff_sec" doc:"Pause in fetching after max_failures consecutive failures; 0 disables."`
	MaxFailures     int64          `yaml:"max_failures" doc:"Consecutive failures that start the error backoff."`
}

// ZonePolicyConfig is ZonePolicyNode's config.
type ZonePolicyConfig struct {
	Zones       []any             `yaml:"zones" doc:"Inline zones [{zone_id, enabled, polygon: [[x, y], ...]}]; when given, source is ignored."`
	Source      string            `yaml:"source" doc:"Where zones come from when zones is not given: file, api, or none (empty)."`
	SiteID      string            `yaml:"site_id" doc:"Site of the api URL."`
	CameraID    string            `yaml:"camera_id" doc:"Camera of the api URL."`
	RuleMap     map[string]string `yaml:"rule_map" doc:"event_type -> rule point: bottom_center (default) or bbox_center."`
	FilePath    string            `yaml:"file_path" doc:"Zone file (.json, .yaml, .yml), relative to the working directory: a list of zones or {zones: [...]}."`
	APICfg      ZoneAPIConfig     `yaml:"api_cfg" doc:"Zone API settings."`
	CacheTTLSec plugin.Seconds    `yaml:"cache_ttl_sec" doc:"Seconds a loaded zone list stays fresh; file: re-checked after it, api: refreshed in the background after it."`

	inline []zones.Zone
}

// Validate parses inline zones and checks the source settings, so that a
// malformed polygon or a missing file path fails before the run.
func (c *ZonePolicyConfig) Validate() error {
	if c.Zones != nil {
		zs, err := zones.Parse(c.Zones, nil)
		if err != nil {
			return plugin.Errorf("zones", "%s", err)
		}
		if err := checkPolygons(zs); err != nil {
			return plugin.Errorf("zones", "%s", err)
		}
		c.inline = zs
		return nil
	}
	c.Source = strings.TrimSpace(c.Source)
	switch c.Source {
	case "", "none":
	case "file":
		if strings.TrimSpace(c.FilePath) == "" {
			return plugin.Errorf("file_path", "required when source is file")
		}
		if !zones.FileSuffixOK(c.FilePath) {
			return plugin.Errorf("file_path", "%q: a zone file must end in .json, .yaml or .yml", c.FilePath)
		}
		// The file is read at validation too, so that a missing file, a
		// syntax error or a bad polygon fails the graph before it runs.
		zs, err := zones.LoadFile(c.FilePath, nil)
		if err != nil {
			return plugin.Errorf("file_path", "%s", err)
		}
		if zs == nil {
			return plugin.Errorf("file_path", "zones file %s holds no zone list (want a list of zones or {zones: [...]})", c.FilePath)
		}
		if err := checkPolygons(zs); err != nil {
			return plugin.Errorf("file_path", "zones file %s: %s", c.FilePath, err)
		}
	case "api":
		if strings.TrimSpace(c.APICfg.BaseURL) == "" {
			return plugin.Errorf("api_cfg.base_url", "required when source is api")
		}
	default:
		return plugin.Errorf("source", "must be file, api or none, got %q", c.Source)
	}
	return nil
}

// checkPolygons rejects a zone whose polygon is missing or has fewer than
// three vertices (upstream skipped such a zone with a warning, so its
// events were silently "outside").
func checkPolygons(zs []zones.Zone) error {
	for i, z := range zs {
		if z.Polygon == nil {
			return fmt.Errorf("zones[%d] (zone_id %s): polygon must be a list of at least three [x, y] vertices", i, packet.PyStr(z.ID))
		}
	}
	return nil
}

func registerZonePolicy(r *plugin.Registry) {
	name, aliases := names("policy", "ZonePolicyNode")
	plugin.Register(r, plugin.Spec[ZonePolicyConfig]{
		Name: name, Aliases: aliases,
		Role: plugin.RoleNode, In: []string{"event"}, Out: []string{"event"},
		Summary: "Set payload.zone {zone_id, inside} from the event's bbox rule point and the camera's zone polygons.",
		Description: "The rule point is the bbox bottom centre ((x1+x2)/2, y2), or its centre for event types that " +
			"rule_map maps to bbox_center. Zones are tried in order, disabled ones skipped; the first polygon " +
			"containing the point (boundary included, upstream's exact ray casting) gives {zone_id, inside: true}, " +
			"else {\"\", false}. Zones come inline, from a file (read at start: a malformed file or polygon fails the " +
			"graph naming the file and zone; later edits are picked up after cache_ttl_sec, a broken edit keeps the " +
			"previous zones), from an HTTP API (fetched once at start, then refreshed in the background; events " +
			"never wait for it), or nowhere (every event outside).",
		Defaults: ZonePolicyConfig{
			CacheTTLSec: 30,
			APICfg:      ZoneAPIConfig{TimeoutSec: 3, ErrorBackoffSec: 5, MaxFailures: 3},
		},
		Metrics: []plugin.MetricSpec{
			{Name: "processed_total", Help: "Packets evaluated against the zones."},
			{Name: "inside_total", Help: "Packets found inside a zone."},
		},
		NewProcessor: func(c ZonePolicyConfig, env plugin.Env) (plugin.Processor, error) {
			cs := env.Counters()
			n := &zonePolicy{Counters: cs, cfg: c, env: env, processed: cs.Get("processed_total"), inside: cs.Get("inside_total")}
			ttl := c.CacheTTLSec.Duration()
			switch {
			case c.Zones != nil:
				n.static = c.inline
				n.mode = "inline"
				for i, zn := range c.inline {
					if zn.Polygon == nil {
						env.Logger.Warn("invalid zone polygon, skipping", "error_code", "ZONES_INVALID_POLYGON",
							"zone", fmt.Sprintf("zones[%d] (zone_id %s)", i, packet.PyStr(zn.ID)))
					}
				}
			case c.Source == "file":
				n.file = &zones.File{Path: c.FilePath, TTL: ttl, Log: env.Logger}
				n.mode = "file"
			case c.Source == "api":
				n.api = &zones.API{Log: env.Logger, Cfg: zones.APIConfig{
					BaseURL: c.APICfg.BaseURL, PathTemplate: c.APICfg.GetPathTemplate,
					SiteID: c.SiteID, CameraID: c.CameraID,
					Timeout:      c.APICfg.TimeoutSec.Duration(),
					TTL:          ttl,
					ErrorBackoff: c.APICfg.ErrorBackoffSec.Duration(),
					MaxFailures:  int(c.APICfg.MaxFailures),
				}}
				n.mode = "api"
			default:
				n.mode = "none"
			}
			return n, nil
		},
	})
}

type zonePolicy struct {
	cfg    ZonePolicyConfig
	env    plugin.Env
	mode   string
	static []zones.Zone
	file   *zones.File
	api    *zones.API

	*plugin.Counters
	processed, inside *plugin.Counter
}

func (z *zonePolicy) Start(ctx context.Context) error {
	switch {
	case z.file != nil:
		if err := z.file.Load(); err != nil {
			return err
		}
	case z.api != nil:
		z.api.Start(ctx)
	}
	return nil
}

func (z *zonePolicy) Close(context.Context) error {
	if z.api != nil {
		z.api.Close()
	}
	return nil
}

func (z *zonePolicy) Process(_ context.Context, p *packet.Packet, out plugin.Emitter) error {
	z.processed.Add(1)
	payload, err := eventPayload(p)
	if err != nil {
		return err
	}
	var zs []zones.Zone
	switch z.mode {
	case "inline":
		zs = z.static
	case "file":
		zs = z.file.Zones()
	case "api":
		zs = z.api.Zones()
	}
	result := event.EmptyZone()
	if z.mode != "none" {
		et := ""
		if v, ok := payload.Get("event_type"); ok {
			et = packet.PyStr(v)
		}
		bbox, _ := payload.Get("bbox")
		result, err = zones.Evaluate(et, bbox, zs, z.cfg.RuleMap)
		if err != nil {
			return plugin.DropPacket(fmt.Errorf("zone rule point: %w", err))
		}
	}
	if in, _ := result.Get("inside"); in == true {
		z.inside.Add(1)
	}
	next := payload.Clone(1)
	next.Set("zone", result)
	c := p.Copy()
	c.Payload = next
	return out.Emit(c)
}

var (
	_ plugin.Starter = (*zonePolicy)(nil)
	_ plugin.Closer  = (*zonePolicy)(nil)
)
