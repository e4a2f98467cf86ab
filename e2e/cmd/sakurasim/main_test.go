package main

import (
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRunServesAndStops(t *testing.T) {
	dir := t.TempDir()
	urlFile := filepath.Join(dir, "url")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--topology", "../../sakurasim/testdata/topology.yaml",
			"--token", "t", "--secret", "s", "--boot-delay", "10ms", "--url-file", urlFile, "--seed", "3"})
	}()
	var base string
	deadline := time.Now().Add(15 * time.Second)
	for base == "" {
		if time.Now().After(deadline) {
			t.Fatal("url file never written")
		}
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v", err)
		default:
		}
		if data, err := os.ReadFile(urlFile); err == nil {
			base = strings.TrimSpace(string(data))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Fatalf("base URL %q", base)
	}
	resp, err := http.Get(base + "/_admin/state")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Zone    string
		Servers []any
	}
	_ = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if st.Zone != "is1a" || len(st.Servers) != 3 {
		t.Fatalf("state: %+v", st)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("graceful stop: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("did not stop")
	}
}

func TestRunRefusesNonLoopback(t *testing.T) {
	err := run(context.Background(), []string{"--listen", "0.0.0.0:0"})
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("got %v, want a loopback error", err)
	}
}

// Every flag is documented in docs/simulator.md.
func TestFlagsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/simulator.md")
	if err != nil {
		t.Fatal(err)
	}
	fs, _ := newFlagSet()
	fs.VisitAll(func(f *flag.Flag) {
		if !strings.Contains(string(doc), "`--"+f.Name+"`") {
			t.Errorf("flag --%s is not documented in docs/simulator.md", f.Name)
		}
	})
}
