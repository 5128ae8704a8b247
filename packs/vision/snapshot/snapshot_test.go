package snapshot

import (
	"image"
	"image/color"
	"image/jpeg"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRelSanitises(t *testing.T) {
	cases := []struct {
		site, cam, ts, track, want string
	}{
		// upstream test_snapshot_paths: ts 2026-02-05T12:34:56+09:00, track 7
		{"S001", "cam01", "2026-02-05T12:34:56+09:00", "7", "S001/cam01/2026-02-05T12_34_56_09_00_7.jpg"},
		{"S001", "cam01", "2026-02-14T00:00:00Z", "", "S001/cam01/2026-02-14T00_00_00Z.jpg"},
		{"S001", "../../etc", "t", "", "S001/______etc/t.jpg"},
		{"..", "cam/01", "t", "../x", "__/cam_01/t____x.jpg"},
		{"", "", "", "", "_/_/_.jpg"},
		{"S", "kamera-ü", "t", "1", "S/kamera-_/t_1.jpg"},
		{`C:\x`, "cam01", "t", "1", "C__x/cam01/t_1.jpg"},
	}
	for _, c := range cases {
		if got := Rel(c.site, c.cam, c.ts, c.track); got != c.want {
			t.Errorf("Rel(%q, %q, %q, %q) = %q, want %q", c.site, c.cam, c.ts, c.track, got, c.want)
		}
	}
}

func TestPublic(t *testing.T) {
	cases := []struct{ base, rel, prefix, want string }{
		{"/data/snap", "S/c/t.jpg", "/snapshots", "/snapshots/S/c/t.jpg"},
		{"/data/snap", "S/c/t.jpg", "/snapshots/", "/snapshots/S/c/t.jpg"},
		{"/data/snap", "S/c/t.jpg", "https://cdn.example/snap", "https://cdn.example/snap/S/c/t.jpg"},
		{"/data/snap", "S/c/t.jpg", "", filepath.Join("/data/snap", "S", "c", "t.jpg")},
		{"rel/dir", "S/c/t.jpg", "", filepath.Join("rel/dir", "S", "c", "t.jpg")},
	}
	for _, c := range cases {
		if got := Public(c.base, c.rel, c.prefix); got != c.want {
			t.Errorf("Public(%q, %q, %q) = %q, want %q", c.base, c.rel, c.prefix, got, c.want)
		}
	}
}

func testImage() image.Image {
	img := image.NewRGBA(image.Rect(0, 0, 16, 8))
	for y := 0; y < 8; y++ {
		for x := 0; x < 16; x++ {
			img.Set(x, y, color.RGBA{R: 200, G: uint8(10 * x), B: 30, A: 255})
		}
	}
	return img
}

func TestWriteJPEGAndCollisions(t *testing.T) {
	base := t.TempDir()
	rel := Rel("S001", "cam01", "2026-02-14T00:00:00Z", "3")
	var used []string
	for i := 0; i < 3; i++ {
		u, err := Write(base, rel, testImage())
		if err != nil {
			t.Fatal(err)
		}
		used = append(used, u)
	}
	want := []string{"S001/cam01/2026-02-14T00_00_00Z_3.jpg", "S001/cam01/2026-02-14T00_00_00Z_3_1.jpg", "S001/cam01/2026-02-14T00_00_00Z_3_2.jpg"}
	for i := range want {
		if used[i] != want[i] {
			t.Fatalf("write %d used %q, want %q", i, used[i], want[i])
		}
		f, err := os.Open(filepath.Join(base, filepath.FromSlash(used[i])))
		if err != nil {
			t.Fatal(err)
		}
		img, err := jpeg.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s is not a JPEG: %v", used[i], err)
		}
		if b := img.Bounds(); b.Dx() != 16 || b.Dy() != 8 {
			t.Fatalf("size %v", b)
		}
		r, _, _, _ := img.At(3, 3).RGBA()
		if r>>8 < 180 {
			t.Fatalf("red channel %d: colours swapped?", r>>8)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(base, "S001", "cam01"))
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Fatalf("temporary file left behind: %s", e.Name())
		}
	}
}

func TestWriteFailure(t *testing.T) {
	base := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(base, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(base, "S/c/t.jpg", testImage()); err == nil {
		t.Fatal("writing under a regular file succeeded")
	}
}
