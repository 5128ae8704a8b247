package plugin

import (
	"errors"
	"math"
	"reflect"
	"slices"
	"strings"
)

// CheckConfig checks a typed config as a graph's decode would once the keys
// are read: required keys set, enum keys holding one of their values, seconds
// finite, and
// the config's own Validate. It is for Go code that builds a node from a
// config struct rather than a graph file (the legacy job, embedders), so
// that a wrong value fails with the same "config.key: ..." message. The
// returned error joins one FieldError per problem.
func CheckConfig[C any](c *C) error {
	v := reflect.ValueOf(c).Elem()
	if v.Kind() != reflect.Struct {
		return nil
	}
	var errs []error
	for _, fi := range structFields(v.Type()) {
		fv := v.FieldByIndex(fi.index)
		if fi.required && fv.IsZero() {
			errs = append(errs, Errorf(fi.key, "required key is missing"))
			continue
		}
		if fv.Type() == secondsType {
			if f := fv.Float(); math.IsNaN(f) || math.IsInf(f, 0) {
				errs = append(errs, Errorf(fi.key, "expected a finite number of seconds, got %v", f))
			}
		}
		if fi.enum != nil && fv.Kind() == reflect.String && !slices.Contains(fi.enum, fv.String()) {
			errs = append(errs, Errorf(fi.key, "must be one of %s, got %q", strings.Join(fi.enum, ", "), fv.String()))
		}
	}
	if val, ok := any(c).(interface{ Validate() error }); ok {
		for _, fe := range fieldErrors(val.Validate()) {
			errs = append(errs, fe)
		}
	}
	return errors.Join(errs...)
}
