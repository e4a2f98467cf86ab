// Command push copies the image of an OCI layout tarball written by ocibuild
// (`make image`) to a registry, with go-containerregistry and without a
// Docker engine. Credentials come from the usual places (the Docker config
// file ~/.docker/config.json or $DOCKER_CONFIG, as written by `crane auth
// login`, `podman login` or `docker login`); they are never printed.
//
//	push --image bin/sakura-cloud-controller-manager-v0.1.0.oci.tar \
//	     --ref registry.example.com/team/sakura-cloud-controller-manager:v0.1.0
package main

import (
	"archive/tar"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func main() {
	var image, ref string
	var insecure bool
	flag.StringVar(&image, "image", "", "OCI layout tarball written by ocibuild (required)")
	flag.StringVar(&ref, "ref", "", "where to push: registry/repository:tag (required)")
	flag.BoolVar(&insecure, "insecure", false, "allow a plain-HTTP registry (127.0.0.1 and localhost always are)")
	flag.Parse()
	if image == "" || ref == "" {
		fmt.Fprintln(os.Stderr, "push: --image and --ref are required")
		os.Exit(2)
	}
	digest, err := push(image, ref, insecure, authn.DefaultKeychain)
	if err != nil {
		fmt.Fprintln(os.Stderr, "push:", err)
		os.Exit(1)
	}
	fmt.Printf("pushed %s@%s\n", ref, digest)
}

// push uploads the one image of the layout tarball at image to ref and
// returns its digest. go-containerregistry already speaks plain HTTP to
// localhost and 127.0.0.1; insecure extends that to any registry.
func push(image, ref string, insecure bool, keychain authn.Keychain) (v1.Hash, error) {
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	tag, err := name.NewTag(ref, append(opts, name.StrictValidation)...)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("reference %q: %w", ref, err)
	}
	img, cleanup, err := readLayoutTar(image)
	if err != nil {
		return v1.Hash{}, err
	}
	defer cleanup()
	if err := remote.Write(tag, img, remote.WithAuthFromKeychain(keychain)); err != nil {
		return v1.Hash{}, fmt.Errorf("pushing to %s: %w", tag, err)
	}
	return img.Digest()
}

// readLayoutTar unpacks an OCI layout tarball into a temporary directory and
// returns its single image.
func readLayoutTar(path string) (v1.Image, func(), error) {
	dir, err := os.MkdirTemp("", "ocipush-")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	fail := func(err error) (v1.Image, func(), error) { cleanup(); return nil, nil, err }
	if err := untar(path, dir); err != nil {
		return fail(fmt.Errorf("reading %s: %w", path, err))
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		return fail(fmt.Errorf("%s is not an OCI layout: %w", path, err))
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return fail(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return fail(err)
	}
	if len(m.Manifests) != 1 {
		return fail(fmt.Errorf("%s holds %d images, want 1", path, len(m.Manifests)))
	}
	img, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		return fail(err)
	}
	return img, cleanup, nil
}

func untar(path, dir string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		target := filepath.Join(dir, filepath.FromSlash(h.Name))
		if target != dir && !strings.HasPrefix(target, dir+string(filepath.Separator)) {
			return fmt.Errorf("entry %q leaves the layout", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
			if err != nil {
				return err
			}
			if _, err := io.Copy(out, tr); err != nil {
				out.Close()
				return err
			}
			if err := out.Close(); err != nil {
				return err
			}
		default:
			return fmt.Errorf("entry %q: unexpected type %c", h.Name, h.Typeflag)
		}
	}
}
