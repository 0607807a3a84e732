// Package catalog finds the third-party artifacts a tenant pins, by name and version: the
// vcluster Helm chart, the KubeRay kustomize base and the Volcano CRDs. It looks in
// catalog directories first (the tenants repository's own, then a local one filled from
// the Go module cache by `make catalog`), then in a Helm chart repository, whose
// downloads it keeps in an on-disk cache.
package catalog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"

	"github.com/raas-dev/raas/internal/memo"
)

// Layout of a catalog directory. Each artifact sits under <kind>/<version>/.
const (
	VClusterDir = "vcluster" // <dir>/vcluster/<version>/ is a Helm chart directory
	KubeRayDir  = "kuberay"  // <dir>/kuberay/<version>/config/default is the kustomize base
	VolcanoDir  = "volcano"  // <dir>/volcano/<version>/crds/*.yaml are the Volcano CRDs
)

// sourceChartVersion is the version a chart taken from source carries; its release
// pipeline stamps the real one.
const sourceChartVersion = "0.0.1"

// ErrNotFound is returned when no source has the artifact.
var ErrNotFound = errors.New("not found in any catalog")

// Options configure a Catalog.
type Options struct {
	// Dirs are catalog directories, searched in order.
	Dirs []string
	// ChartRepository is the URL of a Helm chart repository (https://) or registry
	// (oci://) holding the vcluster chart, tried after Dirs. Empty means none.
	ChartRepository string
	// CacheDir keeps charts downloaded from ChartRepository.
	CacheDir string
}

// DefaultOptions searches the local catalog filled by `make catalog` and caches downloads
// in the user's cache directory.
func DefaultOptions() Options {
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	return Options{Dirs: []string{".catalog"}, CacheDir: filepath.Join(cache, "raas", "charts")}
}

// Catalog resolves artifacts and keeps each one it loaded, so that a chart or base is
// read once per version, not once per tenant. It is safe for concurrent use.
type Catalog struct {
	opts   Options
	charts memo.Map[string, *chart.Chart]
}

// New returns a catalog with the given options.
func New(opts Options) *Catalog {
	return &Catalog{opts: opts}
}

// VClusterChart returns the vcluster chart at version. A chart taken from source has its
// version stamped, so that its labels and default image tags name the real version.
func (c *Catalog) VClusterChart(version string) (*chart.Chart, error) {
	return c.charts.Get(version, func() (*chart.Chart, error) { return c.loadVClusterChart(version) })
}

func (c *Catalog) loadVClusterChart(version string) (*chart.Chart, error) {
	if dir, err := c.find(VClusterDir, version); err == nil {
		ch, err := loader.LoadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("vcluster chart %s: load %s: %w", version, dir, err)
		}
		return stamp(ch, version), nil
	} else if !errors.Is(err, ErrNotFound) || c.opts.ChartRepository == "" {
		return nil, fmt.Errorf("vcluster chart %s: %w", version, err)
	}
	ch, err := c.pull("vcluster", version)
	if err != nil {
		return nil, fmt.Errorf("vcluster chart %s: %w", version, err)
	}
	return stamp(ch, version), nil
}

func stamp(ch *chart.Chart, version string) *chart.Chart {
	if ch.Metadata.Version == sourceChartVersion {
		ch.Metadata.Version = version
		ch.Metadata.AppVersion = version
	}
	return ch
}

// KubeRayBase returns the directory of the KubeRay operator's kustomize tree at version;
// its config/default is the base raas builds on.
func (c *Catalog) KubeRayBase(version string) (string, error) {
	dir, err := c.find(KubeRayDir, version)
	if err != nil {
		return "", fmt.Errorf("kuberay %s: %w", version, err)
	}
	return dir, nil
}

// VolcanoCRDs returns the directory holding the Volcano CRDs at version.
func (c *Catalog) VolcanoCRDs(version string) (string, error) {
	dir, err := c.find(VolcanoDir, version)
	if err != nil {
		return "", fmt.Errorf("volcano %s: %w", version, err)
	}
	return filepath.Join(dir, "crds"), nil
}

// find returns the first catalog directory that holds kind at version.
func (c *Catalog) find(kind, version string) (string, error) {
	for _, root := range c.opts.Dirs {
		dir := filepath.Join(root, kind, version)
		info, err := os.Stat(dir)
		switch {
		case err == nil && info.IsDir():
			return dir, nil
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return "", fmt.Errorf("look in %s: %w", root, err)
		}
	}
	return "", fmt.Errorf("%w (searched %v; run `make catalog` for a local one)", ErrNotFound, c.opts.Dirs)
}

// Artifact is one pinned artifact a catalog directory holds.
type Artifact struct {
	// Kind is VClusterDir, KubeRayDir or VolcanoDir.
	Kind    string `json:"kind"`
	Version string `json:"version"`
	// Dir is the catalog directory it was found in.
	Dir string `json:"dir"`
}

// Artifacts lists what the catalog directories hold, kind by kind (vcluster, kuberay,
// volcano), each in the order the directories are searched and by name within one. A
// version found in two directories is listed once, from the first, as the catalog would
// resolve it. A missing directory holds nothing; the chart repository is not listed.
func (c *Catalog) Artifacts() ([]Artifact, error) {
	var out []Artifact
	for _, kind := range []string{VClusterDir, KubeRayDir, VolcanoDir} {
		seen := map[string]bool{}
		for _, root := range c.opts.Dirs {
			entries, err := os.ReadDir(filepath.Join(root, kind))
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("list %s: %w", root, err)
			}
			for _, e := range entries {
				if !e.IsDir() || seen[e.Name()] {
					continue
				}
				seen[e.Name()] = true
				out = append(out, Artifact{Kind: kind, Version: e.Name(), Dir: root})
			}
		}
	}
	return out, nil
}
