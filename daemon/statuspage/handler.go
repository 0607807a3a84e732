package statuspage

import (
	"bytes"
	"embed"
	"html/template"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/raas-dev/raas/schema"
)

//go:embed templates/*.html
var templateFS embed.FS

var templates = template.Must(template.New("").Funcs(template.FuncMap{
	"short": func(rev string) string {
		if len(rev) > 12 {
			return rev[:12]
		}
		return rev
	},
	"lower": strings.ToLower,
}).ParseFS(templateFS, "templates/*.html"))

// Options configure the page.
type Options struct {
	// Client reads the host: Tenants (raas.dev), ResourceQuotas, and Volcano's Queues and
	// PodGroups. Its scheme must know all of them.
	Client client.Reader
	// Platform returns the platform config of the revision applied, for the GPU
	// resource name and the GPU capacity; nil, or returning nil, means unknown.
	Platform func() *schema.Platform
	// GPUResource is the extended resource of a GPU when Platform gives none.
	GPUResource string
	// Logger receives errors writing a page. Nil discards them.
	Logger *slog.Logger
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// DefaultOptions count nvidia.com/gpu.
func DefaultOptions() Options {
	return Options{GPUResource: schema.DefaultGPUResource}
}

// Prefix is where the pages are served: Prefix is the front page, Prefix+"tenants/NAME"
// a tenant's page.
const Prefix = "/status/"

// Handler serves the front page at /status/ and a page per tenant at
// /status/tenants/NAME, and redirects / to /status/.
func Handler(opts Options) http.Handler {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{opts: opts}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Prefix, http.StatusFound)
	})
	mux.HandleFunc("GET "+Prefix+"{$}", h.front)
	mux.HandleFunc("GET "+Prefix+"tenants/{name}", h.tenant)
	return mux
}

type handler struct{ opts Options }

func (h *handler) collect(r *http.Request) *Overview {
	opts := h.opts
	if opts.Platform != nil {
		if p := opts.Platform(); p != nil {
			opts.GPUResource = platformGPUResource(p)
		}
	}
	if opts.GPUResource == "" {
		opts.GPUResource = schema.DefaultGPUResource
	}
	c := &collector{opts: opts}
	return c.overview(r.Context())
}

func (h *handler) front(w http.ResponseWriter, r *http.Request) {
	ov := h.collect(r)
	h.render(w, "front.html", http.StatusOK, map[string]any{"Title": "raas: tenants", "O": ov, "GPUResource": h.gpuResource()})
}

func (h *handler) tenant(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	ov := h.collect(r)
	for i := range ov.Tenants {
		if ov.Tenants[i].Name == name {
			h.render(w, "tenant.html", http.StatusOK, map[string]any{"Title": "raas: " + name, "O": ov, "T": &ov.Tenants[i], "GPUResource": h.gpuResource()})
			return
		}
	}
	h.render(w, "notfound.html", http.StatusNotFound, map[string]any{"Title": "raas: no tenant " + name, "O": ov, "Name": name})
}

func (h *handler) gpuResource() string {
	if h.opts.Platform != nil {
		if p := h.opts.Platform(); p != nil {
			return platformGPUResource(p)
		}
	}
	if h.opts.GPUResource != "" {
		return h.opts.GPUResource
	}
	return schema.DefaultGPUResource
}

func (h *handler) render(w http.ResponseWriter, name string, code int, data map[string]any) {
	var b bytes.Buffer
	if err := templates.ExecuteTemplate(&b, name, data); err != nil {
		h.opts.Logger.Error("status page", "page", name, "error", err)
		http.Error(w, "the status page failed to render", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:")
	w.WriteHeader(code)
	w.Write(b.Bytes())
}
