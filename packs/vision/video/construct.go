package video

import "github.com/schnitzel-stream/schnitzel/plugin"

// The typed constructors build the sources without a graph file, for Go
// callers such as the legacy job: start from the Default* config, set
// fields, and the config is checked as a graph's would be
// (plugin.CheckConfig), so a bad value fails with the same message.

// DefaultFileConfig returns OpenCvVideoFileSource's defaults.
func DefaultFileConfig() FileConfig { return FileConfig{} }

// DefaultRTSPConfig returns OpenCvRtspSource's defaults.
func DefaultRTSPConfig() RTSPConfig { return rtspDefaults }

// DefaultWebcamConfig returns OpenCvWebcamSource's defaults.
func DefaultWebcamConfig() WebcamConfig { return webcamDefaults }

// NewFileSource builds an OpenCvVideoFileSource.
func NewFileSource(c FileConfig, env plugin.Env) (plugin.Source, error) {
	if err := plugin.CheckConfig(&c); err != nil {
		return nil, err
	}
	return newFileSource(c, env)
}

// NewRTSPSource builds an OpenCvRtspSource.
func NewRTSPSource(c RTSPConfig, env plugin.Env) (plugin.Source, error) {
	if err := plugin.CheckConfig(&c); err != nil {
		return nil, err
	}
	return newRTSPSource(c, env)
}

// NewWebcamSource builds an OpenCvWebcamSource.
func NewWebcamSource(c WebcamConfig, env plugin.Env) (plugin.Source, error) {
	if err := plugin.CheckConfig(&c); err != nil {
		return nil, err
	}
	return newWebcamSource(c, env)
}
