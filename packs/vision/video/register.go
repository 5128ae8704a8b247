// Package video holds the vision pack's frame source nodes: video files,
// RTSP cameras and webcams (device selection, reconnect with backoff,
// sampling in ffmpeg for a sampler right behind, packet meta), and their
// Register. The decoding itself (the ffmpeg child process, probe, pipes,
// stderr) is package ffmpeg.
package video

import "github.com/schnitzel-stream/schnitzel/plugin"

const (
	seedMod = "schnitzel_stream.nodes.video:"
	headMod = "schnitzel_stream.packs.vision.nodes:"
	headPy  = "schnitzel_stream.packs.vision.nodes.video:"
)

// Register adds the video sources to r.
func Register(r *plugin.Registry) {
	plugin.Register(r, plugin.Spec[FileConfig]{
		Name:    seedMod + "OpenCvVideoFileSource",
		Aliases: []string{headMod + "OpenCvVideoFileSource", headPy + "OpenCvVideoFileSource"},
		Role:    plugin.RoleSource,
		Out:     []string{"frame"},
		Summary: "Decode a video file into frame packets (payload {frame, frame_idx}).",
		Description: "Runs `ffmpeg` (on PATH) and reads raw frames from its stdout (yuv420p for 4:2:0 video, converted to BGR only when a node reads pixels; bgr24 otherwise); ffprobe checks the file at " +
			"start, so a missing, unreadable or non-video file fails the graph before it runs. Meta carries frame_idx, " +
			"pos_msec (the frame's position in the file) and idempotency_key `frame:{source_id}:{frame_idx}`. With " +
			"`start_ts`, ts = start_ts + position (reproducible runs); with `loop` the positions of later passes " +
			"continue after the previous pass, so ts never goes back. When an EveryNthFrameSamplerNode is this source's only " +
			"consumer (no loop, no --max-events), ffmpeg drops the frames the sampler would drop before they are converted " +
			"or piped; the sampler's output and the report are unchanged (frames not shipped count as emitted here and " +
			"dropped by the sampler).",
		Defaults: DefaultFileConfig(),
		Metrics:  append(samplingMetrics(), plugin.MetricSpec{Name: "passes_total", Help: "Passes over the file started (loop starts another at its end)."}),
		// upstream's fleet template (dev_stream_template_v2.yaml) gives every
		// source the same config block; upstream's nodes ignore the rest.
		Ignored:   []string{"url", "camera_index", "reconnect", "reconnect_backoff_sec", "reconnect_backoff_max_sec"},
		NewSource: newFileSource,
	})
	plugin.Register(r, plugin.Spec[RTSPConfig]{
		Name:    headMod + "OpenCvRtspSource",
		Aliases: []string{headPy + "OpenCvRtspSource"},
		Role:    plugin.RoleSource,
		Out:     []string{"frame"},
		Summary: "Read an RTSP camera into frame packets, reconnecting with bounded exponential backoff.",
		Description: "One ffmpeg process per connection. An open failure or a lost or stalled stream (no frame for " +
			"read_timeout_sec) is retried after reconnect_backoff_sec, doubling up to reconnect_backoff_max_sec; waits " +
			"end at once on shutdown. Meta carries frame_idx, epoch (connections that delivered frames) and " +
			"idempotency_key `frame:{source_id}:{epoch}:{frame_idx}`; ts is the wall clock when the frame was read. " +
			"When an EveryNthFrameSamplerNode is this source's only consumer (no --max-events), ffmpeg drops the frames " +
			"the sampler would drop before they are converted or piped.",
		Defaults:  rtspDefaults,
		Metrics:   liveMetrics(),
		Ignored:   []string{"path", "camera_index"}, // the fleet template's keys, as above
		NewSource: newRTSPSource,
	})
	plugin.Register(r, plugin.Spec[WebcamConfig]{
		Name:    headMod + "OpenCvWebcamSource",
		Aliases: []string{headPy + "OpenCvWebcamSource"},
		Role:    plugin.RoleSource,
		Out:     []string{"frame"},
		Summary: "Read a local camera (v4l2, avfoundation, dshow) into frame packets, reopening it with backoff.",
		Description: "Linux opens /dev/video{camera_index} through v4l2, macOS the avfoundation device, Windows the " +
			"DirectShow device of that index. A missing device is an open failure naming the camera, retried like " +
			"RTSP (backoff, stall detection, sampling in ffmpeg for a sampler right behind it). Meta carries frame_idx, " +
			"camera_index, epoch and idempotency_key `frame:{source_id}:{epoch}:{frame_idx}`.",
		Defaults:  webcamDefaults,
		Metrics:   liveMetrics(),
		Ignored:   []string{"url", "path"}, // the fleet template's keys, as above
		NewSource: newWebcamSource,
	})
}
