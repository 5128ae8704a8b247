// Command wordcount is a ProcessNode plugin in Go, speaking
// docs/plugin-protocol.md with the standard library only: it adds
// "words" (the number of words in the string field config.field, default
// "text") to each map payload.
//
//	go build -o wordcount ./examples/plugins/go
//	plugin: schnitzel_stream.nodes.exec:ProcessNode
//	config: {command: ./wordcount, config: {field: text}}
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

type frame struct {
	Type   string         `json:"type"`
	ID     int64          `json:"id,omitempty"`
	Config map[string]any `json:"config,omitempty"`
	NodeID string         `json:"node_id,omitempty"`
	Packet map[string]any `json:"packet,omitempty"`
}

func main() {
	out := bufio.NewWriter(os.Stdout)
	send := func(v any) {
		b, err := json.Marshal(v)
		if err != nil {
			fmt.Fprintln(os.Stderr, "wordcount:", err)
			os.Exit(1)
		}
		out.Write(append(b, '\n'))
		out.Flush()
	}
	send(map[string]any{"type": "hello", "protocol": 1, "spec": map[string]any{"name": "wordcount", "role": "node"}})
	in := bufio.NewReader(os.Stdin)
	field := "text"
	for {
		line, err := in.ReadBytes('\n')
		if err != nil {
			return // EOF: we are being closed
		}
		var f frame
		d := json.NewDecoder(strings.NewReader(string(line)))
		d.UseNumber() // keep integers as they came
		if err := d.Decode(&f); err != nil {
			fmt.Fprintln(os.Stderr, "wordcount: bad frame:", err)
			os.Exit(1)
		}
		switch f.Type {
		case "config":
			if s, ok := f.Config["field"].(string); ok {
				field = s
			}
			send(map[string]any{"type": "ready"})
		case "packet":
			p := f.Packet
			if m, ok := p["payload"].(map[string]any); ok {
				if s, ok := m[field].(string); ok {
					m["words"] = len(strings.Fields(s))
				}
			}
			send(map[string]any{"type": "result", "id": f.ID, "packets": []any{p}})
		case "close":
			return
		}
	}
}
