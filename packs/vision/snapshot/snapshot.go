// Package snapshot writes an event's frame as a JPEG file under a base
// directory, at upstream's layout <base>/<site_id>/<camera_id>/<ts>[_<track_id>].jpg,
// and returns the path an event carries (public_prefix + relative path, or
// the file path).
//
// Unlike upstream, every name component is sanitised (upstream cleaned only
// the timestamp, so a camera id such as "../../etc" escaped the base
// directory), files are written atomically (temp file + rename), and an
// existing file is never overwritten: a collision gets a _1, _2, ... suffix.
package snapshot

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Quality is the JPEG quality, OpenCV imwrite's default.
const Quality = 95

// Sanitize replaces every byte outside [0-9A-Za-z_-] with "_" (upstream's
// rule for the timestamp), so a component can never be "..", hold a path
// separator or be empty.
func Sanitize(s string) string {
	if s == "" {
		return "_"
	}
	b := []byte(s)
	out := b[:0]
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c == '-':
			out = append(out, c)
		default:
			// A multi-byte UTF-8 character becomes one "_", as Python's
			// re.sub works on characters.
			if c >= 0x80 {
				for i+1 < len(b) && b[i+1]&0xC0 == 0x80 {
					i++
				}
			}
			out = append(out, '_')
		}
	}
	return string(out)
}

// Rel returns the snapshot's path relative to the base directory, with
// forward slashes: <site>/<camera>/<ts>[_<track>].jpg. track is "" when the
// event has no track id.
func Rel(site, camera, ts, track string) string {
	name := Sanitize(ts)
	if track != "" {
		name += "_" + Sanitize(track)
	}
	return Sanitize(site) + "/" + Sanitize(camera) + "/" + name + ".jpg"
}

// Public returns what the event's snapshot_path holds: publicPrefix joined
// with rel by exactly one "/" when a prefix is set (a URL prefix such as
// https://cdn/x stays intact; upstream's Path join collapsed "//"), else
// the file path base/rel.
func Public(base, rel, publicPrefix string) string {
	if publicPrefix != "" {
		return strings.TrimRight(publicPrefix, "/") + "/" + rel
	}
	return filepath.Join(base, filepath.FromSlash(rel))
}

// Write encodes img as JPEG at base/rel, creating parent directories. It
// writes a temporary file and hard-links it into place, so readers never
// see a partial image and an existing file is never replaced; if the name
// is taken it tries rel with _1, _2, ... before .jpg. On file systems
// without hard links it falls back to an exclusive create. It returns the
// relative path actually used.
func Write(base, rel string, img image.Image) (string, error) {
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: Quality}); err != nil {
		return "", fmt.Errorf("snapshot %s: encode: %w", rel, err)
	}
	full := filepath.Join(base, filepath.FromSlash(rel))
	dir := filepath.Dir(full)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("snapshot: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".snapshot-*.tmp")
	if err != nil {
		return "", fmt.Errorf("snapshot: %w", err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)
	_, err = tmp.Write(buf.Bytes())
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("snapshot %s: %w", full, err)
	}
	stem := strings.TrimSuffix(rel, ".jpg")
	useLink := true
	for n := 0; n < 1000; n++ {
		cand := rel
		if n > 0 {
			cand = stem + "_" + strconv.Itoa(n) + ".jpg"
		}
		dst := filepath.Join(base, filepath.FromSlash(cand))
		if useLink {
			err = os.Link(tmpName, dst)
			if err != nil && !errors.Is(err, fs.ErrExist) {
				useLink = false // no hard links here: exclusive create instead
			}
		}
		if !useLink {
			err = writeExcl(dst, buf.Bytes())
		}
		if err == nil {
			return cand, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("snapshot %s: %w", dst, err)
		}
	}
	return "", fmt.Errorf("snapshot %s: 1000 files with this name already exist", full)
}

func writeExcl(dst string, data []byte) error {
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
	}
	return err
}
