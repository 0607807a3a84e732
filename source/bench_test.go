package source

import (
	"context"
	"fmt"
	"testing"
)

// tenants returns n small tenant files and a raas.yaml.
func tenants(n int) map[string]string {
	files := map[string]string{"raas.yaml": "apiVersion: raas.dev/v1alpha1\nkind: Platform\n"}
	for i := range n {
		name := fmt.Sprintf("team-%04d", i)
		files["tenants/"+name+".yaml"] = fmt.Sprintf(`apiVersion: raas.dev/v1alpha1
kind: Tenant
metadata: {name: %s}
spec:
  owners: [%s@example.com]
  vcluster: {version: 0.25.0, kubernetes: v1.32.1}
  kuberay: {version: 1.5.0}
  quota: {cpu: "64", memory: 256Gi, gpu: 8, storage: 1Ti, pods: 200}
`, name, name)
	}
	return files
}

// BenchmarkFetchNoop measures a fetch that finds nothing new, against the loopback
// smart-HTTP server: one ref advertisement, no pack.
func BenchmarkFetchNoop(b *testing.B) {
	f := newFixture(b)
	g := newSource(b, f.options(b))
	fetch(b, g)
	before := f.server.requests.Load()
	b.ResetTimer()
	for b.Loop() {
		if _, err := g.Fetch(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(f.server.requests.Load()-before)/float64(b.N), "requests/op")
}

// BenchmarkFetch1000Tenants measures a first fetch (clone, depth 1, and checkout) of a
// repository with 1,000 tenant files into an empty cache.
func BenchmarkFetch1000Tenants(b *testing.B) {
	repo := newRemoteRepo(b)
	repo.commit("1000 tenants", tenants(1000))
	server := newHTTPServer(b, repo.root, testToken)
	f := &fixture{repo: repo, server: server}
	b.ResetTimer()
	for b.Loop() {
		g := newSource(b, f.options(b))
		rev := fetch(b, g)
		b.StopTimer()
		if readFile(b, rev.FS, "tenants/team-0999.yaml") == "" {
			b.Fatal("tenant missing")
		}
		b.StartTimer()
	}
}

// BenchmarkFetch1000TenantsOneChanged measures a fetch that brings one changed tenant in
// a 1,000-tenant repository into a warm cache, checkout included.
func BenchmarkFetch1000TenantsOneChanged(b *testing.B) {
	repo := newRemoteRepo(b)
	repo.commit("1000 tenants", tenants(1000))
	server := newHTTPServer(b, repo.root, testToken)
	f := &fixture{repo: repo, server: server}
	g := newSource(b, f.options(b))
	fetch(b, g)
	i := 0
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		i++
		want := repo.commit("change", map[string]string{"tenants/team-0001.yaml": fmt.Sprintf("changed: %d\n", i)})
		b.StartTimer()
		if rev := fetch(b, g); rev.ID != want {
			b.Fatalf("revision %s, want %s", rev.ID, want)
		}
	}
}

// BenchmarkDirHash1000Tenants measures DirSource.Fetch, which hashes every file.
func BenchmarkDirHash1000Tenants(b *testing.B) {
	dir := b.TempDir()
	writeFiles(b, dir, tenants(1000))
	d := newDirSource(b, dir)
	for b.Loop() {
		fetch(b, d)
	}
}
