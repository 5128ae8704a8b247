// Package mqtt holds the MQTT 3.1.1 source and sink (paho.mqtt.golang):
// a shared connection loop with jittered reconnects, a sink that waits
// for PUBACK/PUBCOMP before it forwards, and a source that acknowledges
// a message only once a durable sink downstream committed it.
package mqtt

import "github.com/schnitzel-stream/schnitzel/plugin"

// Module is the plugin module of the MQTT nodes.
const Module = "schnitzel_stream.nodes.mqtt:"

// Register adds MqttSource and MqttSink to r.
func Register(r *plugin.Registry) {
	registerSource(r)
	registerSink(r)
}
