package serve

import "strings"

// lookupFor is a graph's ${oc.env:NAME} resolver: its own variables
// (ApplyOptions.Env) first, then the process environment, but only SS_*
// names and Config.AllowEnv. Everything else is unset for the loader, so a
// graph sent over the API cannot read the server's secrets (upstream
// resolves any variable: spec D-WIZ-1).
func (s *Supervisor) lookupFor(env map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		if v, ok := env[name]; ok {
			return v, true
		}
		if strings.HasPrefix(name, "SS_") || s.allowEnv[name] {
			return s.lookupEnv(name)
		}
		return "", false
	}
}
