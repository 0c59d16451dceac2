package imagetest_test

import (
	"archive/tar"
	"bytes"
	"io"
	"slices"
	"testing"

	"github.com/slipwayhq/slipway/images/imagetest"
)

func TestWhiteoutNames(t *testing.T) {
	cases := []struct {
		got  imagetest.File
		want string
	}{
		{imagetest.Whiteout("/etc/old.conf"), "/etc/.wh.old.conf"},
		{imagetest.Whiteout("etc/dir/"), "/etc/.wh.dir"},
		{imagetest.Whiteout("top"), "/.wh.top"},
		{imagetest.Opaque("/var/cache"), "/var/cache/.wh..wh..opq"},
	}
	for _, c := range cases {
		if c.got.Path != c.want {
			t.Errorf("path = %q, want %q", c.got.Path, c.want)
		}
	}
}

func TestDeterministic(t *testing.T) {
	img := imagetest.Image{Tags: []string{"a"}, Layers: []imagetest.Layer{{Files: []imagetest.File{{Path: "/x", Content: []byte("x")}}}}}
	for _, write := range []func(io.Writer) error{
		func(w io.Writer) error {
			return imagetest.WriteOCI(w, imagetest.Options{Gzip: true, LayerGzip: true}, img)
		},
		func(w io.Writer) error { return imagetest.WriteDockerSave(w, imagetest.Options{Gzip: true}, img) },
	} {
		var a, b bytes.Buffer
		if err := write(&a); err != nil {
			t.Fatal(err)
		}
		if err := write(&b); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Error("two writes of the same image differ")
		}
	}
}

func TestLayerEntries(t *testing.T) {
	img := imagetest.Image{Layers: []imagetest.Layer{{Files: []imagetest.File{
		imagetest.Dir("/etc"), {Path: "/etc/a", Content: []byte("a"), Mode: 0o600}, imagetest.Symlink("/lib", "usr/lib"), imagetest.Whiteout("/etc/b"),
	}}}}
	b, err := img.Build(false)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(bytes.NewReader(b.Layers[0]))
	var got []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(h.Typeflag)+h.Name+" "+h.Linkname)
		if h.Name == "etc/a" && h.Mode != 0o600 {
			t.Errorf("etc/a mode %o", h.Mode)
		}
	}
	want := []string{"5etc/ ", "0etc/a ", "2lib usr/lib", "0etc/.wh.b "}
	if !slices.Equal(got, want) {
		t.Errorf("entries = %q, want %q", got, want)
	}
	if b.ChainID != b.DiffIDs[0] {
		t.Errorf("chain ID of one layer = %s, want its diffID %s", b.ChainID, b.DiffIDs[0])
	}
}
