package procgraph_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/internal/graph"
	"github.com/schnitzel-stream/schnitzel/internal/procgraph"
	natsnodes "github.com/schnitzel-stream/schnitzel/nodes/nats"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

const (
	natsURL      = "nats://127.0.0.1:4222"
	natsProducer = `version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:TickerSource", config: {interval_sec: 0, count: 3}}
  - {id: pub, kind: sink, plugin: "schnitzel_stream.nodes.nats:JetStreamSink", config: {url: "%s", subject: "%s", stream: DEMO, create_stream: true}}
edges:
  - {from: src, to: pub}
`
	natsConsumer = `version: 2
nodes:
  - {id: sub, kind: source, plugin: "schnitzel_stream.nodes.nats:JetStreamSource", config: {url: "%s", stream: DEMO, durable: c, filter_subject: "%s", follow: false}}
  - {id: out, kind: sink, plugin: "schnitzel_stream.nodes.dev:PrintSink"}
edges:
  - {from: sub, to: out}
`
	// Block style: every key on its own line, so the tests can check them.
	natsPair = `version: 1
processes:
  - id: p
    graph: p.yaml
  - id: c
    graph: c.yaml
channels:
  - id: q1
    transport: nats
    subject: demo.events
    stream: DEMO
    url: nats://127.0.0.1:4222
links:
  - producer: p
    consumer: c
    channel: q1
`
)

func natsRegistry() *plugin.Registry {
	r := registry()
	natsnodes.Register(r)
	return r
}

func validateEnv(t *testing.T, spec string, env map[string]string) (*procgraph.Spec, *procgraph.Report, graph.Diags) {
	t.Helper()
	write(t, "pg.yaml", spec)
	s, diags := procgraph.LoadFile("pg.yaml", func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if s == nil {
		return nil, nil, diags
	}
	rep, vd := procgraph.Validate(s, loader(natsRegistry()))
	return s, rep, append(diags, vd...)
}

func TestValidateNATS(t *testing.T) {
	twoChannels := func(subj2, filter2 string) string {
		return `version: 1
processes:
  - {id: p, graph: p.yaml}
  - {id: c, graph: c.yaml}
  - {id: p2, graph: p2.yaml}
  - {id: c2, graph: c2.yaml}
channels:
  - {id: q1, transport: nats, subject: demo.events, stream: DEMO}
  - {id: q2, transport: nats, subject: ` + subj2 + `, stream: DEMO}
links:
  - {producer: p, consumer: c, channel: q1}
  - {producer: p2, consumer: c2, channel: q2}
` + "#" + filter2 + "\n"
	}
	cases := []struct {
		name, spec string
		env        map[string]string
		prod, cons string // graphs' (url, subject/filter) when not the channel's
		more       map[string]string
		want       string // "" = valid; else "file:line: ...substring"
	}{
		{name: "ok", spec: natsPair},
		{name: "ok without filter", spec: natsPair, cons: fmt.Sprintf(natsConsumer, natsURL, "")},
		{name: "explicit sqlite", spec: strings.Replace(pair, "{id: q1,", "{id: q1, transport: sqlite,", 1),
			prod: fmt.Sprintf(producer, 3, "q.sqlite3"), cons: fmt.Sprintf(consumer, "q.sqlite3", "q.sqlite3")},
		{name: "unknown transport", spec: strings.Replace(natsPair, "transport: nats", "transport: nast", 1),
			want: `pg.yaml:9: channels[0].transport: unknown transport "nast" (did you mean "nats"?`},
		{name: "transport not a string", spec: strings.Replace(natsPair, "transport: nats", "transport: 3", 1),
			want: "pg.yaml:9: channels[0].transport: transport must be a non-empty string"},
		{name: "missing subject", spec: strings.Replace(natsPair, "    subject: demo.events\n", "", 1),
			want: "pg.yaml:8: channels[0]: subject is required"},
		{name: "missing stream", spec: strings.Replace(natsPair, "    stream: DEMO\n", "", 1),
			want: "pg.yaml:8: channels[0]: stream is required"},
		{name: "wildcard subject", spec: strings.Replace(natsPair, "subject: demo.events", "subject: demo.*", 1),
			want: `pg.yaml:10: channels[0].subject: subject "demo.*": wildcard "*"`},
		{name: "empty token", spec: strings.Replace(natsPair, "subject: demo.events", "subject: demo..events", 1),
			want: `pg.yaml:10: channels[0].subject: subject "demo..events": empty token`},
		{name: "stream with a dot", spec: strings.Replace(natsPair, "stream: DEMO", "stream: DE.MO", 1),
			want: `pg.yaml:11: channels[0].stream: stream "DE.MO": a stream name has no dots`},
		{name: "sqlite key on nats", spec: strings.Replace(natsPair, "    stream: DEMO\n", "    stream: DEMO\n    path: q.sqlite3\n", 1),
			want: "pg.yaml:12: channels[0].path: path is a key of transport: sqlite channels"},
		{name: "require_ack on nats", spec: strings.Replace(natsPair, "    stream: DEMO\n", "    stream: DEMO\n    require_ack: true\n", 1),
			want: "pg.yaml:12: channels[0].require_ack: require_ack is a key of transport: sqlite channels"},
		{name: "nats key on sqlite", spec: strings.Replace(pair, "require_ack: true}", "require_ack: true, subject: a.b}", 1),
			prod: fmt.Sprintf(producer, 3, "q.sqlite3"), cons: fmt.Sprintf(consumer, "q.sqlite3", "q.sqlite3"),
			want: "pg.yaml:6: channels[0].subject: subject is a key of transport: nats channels"},
		{name: "producer subject", spec: natsPair, prod: fmt.Sprintf(natsProducer, natsURL, "demo.other"),
			want: `pg.yaml:14: link p -> c: producer "p" has no JetStreamSink publishing subject demo.events to stream DEMO at nats://127.0.0.1:4222 (channel "q1") (node "pub" has subject "demo.other", want "demo.events")`},
		{name: "producer is a queue", spec: natsPair, prod: fmt.Sprintf(producer, 3, "q.sqlite3"),
			want: `pg.yaml:14: link p -> c: producer "p" has no JetStreamSink`},
		{name: "consumer url", spec: natsPair, cons: fmt.Sprintf(natsConsumer, "nats://127.0.0.1:4999", "demo.events"),
			want: `pg.yaml:14: link p -> c: consumer "c" has no JetStreamSource reading stream DEMO at nats://127.0.0.1:4222 (channel "q1") (node "sub" has url "nats://127.0.0.1:4999", want "nats://127.0.0.1:4222")`},
		{name: "consumer filter", spec: natsPair, cons: fmt.Sprintf(natsConsumer, natsURL, "demo.other"),
			want: `pg.yaml:14: link p -> c: consumer "c" node "sub" filters subject "demo.other": channel "q1" is subject demo.events`},
		{name: "url from NATS_URL", spec: strings.Replace(natsPair, "    url: nats://127.0.0.1:4222\n", "", 1),
			env:  map[string]string{"NATS_URL": "nats://127.0.0.1:4999"},
			prod: fmt.Sprintf(natsProducer, "nats://127.0.0.1:4999", "demo.events"), cons: fmt.Sprintf(natsConsumer, "nats://127.0.0.1:4999", "demo.events")},
		{name: "url default", spec: strings.Replace(natsPair, "    url: nats://127.0.0.1:4222\n", "", 1),
			env:  map[string]string{"NATS_URL": "nats://127.0.0.1:4999"},
			want: `(node "pub" has url "nats://127.0.0.1:4222", want "nats://127.0.0.1:4999")`},
		{name: "same subject twice", spec: twoChannels("demo.events", ""),
			want: `pg.yaml:9: channel q2: uses the same stream and subject as channel "q1"`},
		{name: "shared stream, no filter", spec: twoChannels("demo.more", ""),
			more: map[string]string{"p2.yaml": fmt.Sprintf(natsProducer, natsURL, "demo.more"), "c2.yaml": fmt.Sprintf(natsConsumer, natsURL, "")},
			want: `pg.yaml:12: link p2 -> c2: consumer "c2" node "sub" reads all of stream DEMO, which other channels share: set filter_subject: demo.more`},
		{name: "shared stream, filtered", spec: twoChannels("demo.more", ""),
			more: map[string]string{"p2.yaml": fmt.Sprintf(natsProducer, natsURL, "demo.more"), "c2.yaml": fmt.Sprintf(natsConsumer, natsURL, "demo.more")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			inDir(t)
			prod, cons := c.prod, c.cons
			if prod == "" {
				prod = fmt.Sprintf(natsProducer, natsURL, "demo.events")
			}
			if cons == "" {
				cons = fmt.Sprintf(natsConsumer, natsURL, "demo.events")
			}
			write(t, "p.yaml", prod)
			write(t, "c.yaml", cons)
			for name, body := range c.more {
				write(t, name, body)
			}
			_, _, diags := validateEnv(t, c.spec, c.env)
			wantErrors(t, diags, c.want)
		})
	}
}

// The report shows a nats channel as its server, stream and subject (the
// password masked), and NATSChannels hands run the producer's sink.
func TestNATSReport(t *testing.T) {
	inDir(t)
	url := "nats://u:secret@127.0.0.1:4222"
	write(t, "p.yaml", fmt.Sprintf(natsProducer, url, "demo.events"))
	write(t, "c.yaml", fmt.Sprintf(natsConsumer, url, "demo.events"))
	s, rep, diags := validateEnv(t, strings.Replace(natsPair, "url: "+natsURL, "url: "+url, 1), nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	where := rep.ChannelPaths["q1"]
	if strings.Contains(where, "secret") || !strings.Contains(where, "stream=DEMO subject=demo.events") {
		t.Fatalf("channel shown as %q", where)
	}
	ncs := rep.NATSChannels(s)
	if len(ncs) != 1 || ncs[0].Producer != "p" || ncs[0].Node != "pub" || ncs[0].Channel.ID != "q1" {
		t.Fatalf("NATSChannels = %+v", ncs)
	}
	if v, _ := ncs[0].Config.Get("create_stream"); v != true {
		t.Fatalf("sink config %v", ncs[0].Config)
	}
}
