package catalog

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/getter"
	"helm.sh/helm/v3/pkg/registry"
	"helm.sh/helm/v3/pkg/repo"
)

// pull fetches chart name at version from the chart repository, through the on-disk
// cache. A cached archive is trusted: chart versions are immutable.
func (c *Catalog) pull(name, version string) (*chart.Chart, error) {
	cached := filepath.Join(c.opts.CacheDir, fmt.Sprintf("%s-%s.tgz", name, version))
	if data, err := os.ReadFile(cached); err == nil {
		return loader.LoadArchive(bytes.NewReader(data))
	}
	data, err := c.download(name, version)
	if err != nil {
		return nil, err
	}
	ch, err := loader.LoadArchive(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("load downloaded archive: %w", err)
	}
	if err := writeFileAtomic(cached, data); err != nil {
		return nil, fmt.Errorf("cache chart: %w", err)
	}
	return ch, nil
}

func (c *Catalog) download(name, version string) ([]byte, error) {
	repoURL := c.opts.ChartRepository
	if registry.IsOCI(repoURL) {
		rc, err := registry.NewClient()
		if err != nil {
			return nil, fmt.Errorf("registry client: %w", err)
		}
		g, err := getter.NewOCIGetter(getter.WithRegistryClient(rc))
		if err != nil {
			return nil, err
		}
		ref := fmt.Sprintf("%s/%s:%s", strings.TrimSuffix(repoURL, "/"), name, version)
		buf, err := g.Get(ref)
		if err != nil {
			return nil, fmt.Errorf("pull %s: %w", ref, err)
		}
		return buf.Bytes(), nil
	}
	providers := getter.Providers{{Schemes: []string{"http", "https"}, New: getter.NewHTTPGetter}}
	r, err := repo.NewChartRepository(&repo.Entry{Name: "raas", URL: repoURL}, providers)
	if err != nil {
		return nil, fmt.Errorf("chart repository %s: %w", repoURL, err)
	}
	// Keep the index in raas's cache, not in Helm's.
	r.CachePath = filepath.Join(c.opts.CacheDir, "index")
	indexFile, err := r.DownloadIndexFile()
	if err != nil {
		return nil, fmt.Errorf("chart repository %s: %w", repoURL, err)
	}
	index, err := repo.LoadIndexFile(indexFile)
	if err != nil {
		return nil, fmt.Errorf("chart repository %s: %w", repoURL, err)
	}
	cv, err := index.Get(name, version)
	if err != nil || len(cv.URLs) == 0 {
		return nil, fmt.Errorf("chart repository %s has no %s %s", repoURL, name, version)
	}
	url, err := repo.ResolveReferenceURL(repoURL, cv.URLs[0])
	if err != nil {
		return nil, err
	}
	g, err := getter.NewHTTPGetter()
	if err != nil {
		return nil, err
	}
	buf, err := g.Get(url)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", url, err)
	}
	return buf.Bytes(), nil
}

// writeFileAtomic writes data to path through a temporary file, so that a reader never
// sees half an archive.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
