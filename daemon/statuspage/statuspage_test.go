package statuspage_test

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	schedulingv1beta1 "volcano.sh/apis/pkg/apis/scheduling/v1beta1"

	"github.com/raas-dev/raas/api/v1alpha1"
	"github.com/raas-dev/raas/daemon"
	"github.com/raas-dev/raas/daemon/statuspage"
	"github.com/raas-dev/raas/internal/exampletest"
	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/render/catalog"
	"github.com/raas-dev/raas/source"
)

// A phone-sized viewport: the page must fit it without scrolling sideways.
const phoneWidth, phoneHeight = 390, 844

func pageScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v1alpha1.AddToScheme(s))
	utilruntime.Must(schedulingv1beta1.AddToScheme(s))
	return s
}

// fleet runs one loop pass of the examples against a real control plane, then sets what
// the controllers that do not run here would: the quota controller's usage, Volcano's
// queue allocation and a PodGroup it cannot place, and the bridge's report of a
// collision.
type fleet struct {
	client client.Client
	loop   *daemon.Loop
	// Set by the test, shown by the page.
	usedCPU, usedGPU, hardGPU, allocatedGPU, capabilityGPU string
	podGroup, pgReason, pgMessage, collision               string
}

func startFleet(t *testing.T) *fleet {
	t.Helper()
	crds := exampletest.Path(t, "deploy", "crds")
	opts := testenv.DefaultControlPlaneOptions()
	opts.CRDDirs = append(opts.CRDDirs, crds)
	cp := testenv.StartHost(t, opts)
	c, err := client.New(cp.Config, client.Options{Scheme: pageScheme()})
	if err != nil {
		t.Fatal(err)
	}
	src, err := source.NewDir(exampletest.Dir(t), source.DefaultDirOptions())
	if err != nil {
		t.Fatal(err)
	}
	lo := daemon.DefaultOptions()
	lo.Source = src
	lo.Catalog = catalog.Options{Dirs: []string{exampletest.Catalog(t)}, CacheDir: t.TempDir()}
	lo.Reconcile.VClusterTimeout = time.Second // no vcluster runs: tenants stay Progressing
	lo.Bridge = false
	lo.Logger = slog.New(slog.DiscardHandler)
	l, err := daemon.New(cp.Config, lo)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Pass(t.Context(), "test"); err != nil {
		t.Fatal(err)
	}
	f := &fleet{client: c, loop: l, usedCPU: "3", usedGPU: "2", allocatedGPU: "2",
		podGroup: "ray-train-pg", pgReason: "NotEnoughResources",
		pgMessage: "0/4 nodes are unavailable: 4 Insufficient nvidia.com/gpu.",
		collision: "team-b/ray-train: the PodGroup name ray-train-pg is taken by team-a/ray-train"}
	ctx := t.Context()
	const tenant, ns = "ml-team-alpha", "tenant-ml-team-alpha"

	var quota corev1.ResourceQuota
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "raas-quota"}, &quota); err != nil {
		t.Fatal(err)
	}
	quota.Status.Hard = quota.Spec.Hard
	hard := quota.Spec.Hard["requests.nvidia.com/gpu"]
	f.hardGPU = hard.String()
	quota.Status.Used = corev1.ResourceList{}
	for name := range quota.Spec.Hard {
		quota.Status.Used[name] = resource.MustParse("0")
	}
	quota.Status.Used["requests.cpu"] = resource.MustParse(f.usedCPU)
	quota.Status.Used["requests.nvidia.com/gpu"] = resource.MustParse(f.usedGPU)
	if err := c.Status().Update(ctx, &quota); err != nil {
		t.Fatal(err)
	}

	var queue schedulingv1beta1.Queue
	if err := c.Get(ctx, client.ObjectKey{Name: ns}, &queue); err != nil {
		t.Fatal(err)
	}
	capability := queue.Spec.Capability["nvidia.com/gpu"]
	f.capabilityGPU = capability.String()
	queue.Status.State = schedulingv1beta1.QueueStateOpen
	queue.Status.Allocated = corev1.ResourceList{"nvidia.com/gpu": resource.MustParse(f.allocatedGPU), "cpu": resource.MustParse(f.usedCPU)}
	if err := c.Status().Update(ctx, &queue); err != nil {
		t.Fatal(err)
	}

	pg := &schedulingv1beta1.PodGroup{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: f.podGroup},
		Spec:       schedulingv1beta1.PodGroupSpec{MinMember: 5, Queue: ns},
		Status: schedulingv1beta1.PodGroupStatus{Phase: schedulingv1beta1.PodGroupPending, Conditions: []schedulingv1beta1.PodGroupCondition{{
			Type: schedulingv1beta1.PodGroupUnschedulableType, Status: corev1.ConditionTrue,
			Reason: f.pgReason, Message: f.pgMessage, LastTransitionTime: metav1.Now(),
		}}},
	}
	if err := c.Create(ctx, pg); err != nil { // PodGroups have no status subresource
		t.Fatal(err)
	}
	running := &schedulingv1beta1.PodGroup{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ray-serve-pg"},
		Spec:       schedulingv1beta1.PodGroupSpec{MinMember: 2, Queue: ns},
		Status:     schedulingv1beta1.PodGroupStatus{Phase: schedulingv1beta1.PodGroupRunning},
	}
	if err := c.Create(ctx, running); err != nil {
		t.Fatal(err)
	}

	var st v1alpha1.Tenant
	if err := c.Get(ctx, client.ObjectKey{Name: tenant}, &st); err != nil {
		t.Fatal(err)
	}
	st.Status.PodGroups = &v1alpha1.PodGroupStatus{Mirrored: 1, Collisions: []string{f.collision}}
	if err := c.Status().Update(ctx, &st); err != nil {
		t.Fatal(err)
	}
	return f
}

// browser is a headless Chromium with a phone's viewport that records console errors.
type browser struct {
	ctx    context.Context
	mu     sync.Mutex
	errors []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		t.Fatal("no Chromium on PATH: apt-get install chromium (.ci/run does)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	b := &browser{ctx: ctx}
	err := chromedp.Listen(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch ev := ev.(type) {
		case *cdpruntime.EventConsoleAPICalled:
			if ev.Type == cdpruntime.ConsoleAPICalledTypeError || ev.Type == cdpruntime.ConsoleAPICalledTypeWarning {
				b.errors = append(b.errors, fmt.Sprintf("console.%s: %v", ev.Type, ev.Args))
			}
		case *cdpruntime.EventExceptionThrown:
			b.errors = append(b.errors, "exception: "+ev.ExceptionDetails.Text)
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.EntryLevelError || ev.Entry.Level == cdplog.EntryLevelWarning {
				b.errors = append(b.errors, fmt.Sprintf("%s %s: %s %s", ev.Entry.Level, ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
			}
		}
	})
	if err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(phoneWidth, phoneHeight, chromedp.EmulateMobile)); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return b
}

// visit opens url and returns the page's visible text, a full-page screenshot, and the
// width of the widest content: the document's, or the page's width plus what any table
// hides behind a sideways scroll.
func (b *browser) visit(t *testing.T, url string) (text string, shot []byte, scrollWidth int) {
	t.Helper()
	if err := chromedp.Do(b.ctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("footer"))); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	var err error
	if text, err = chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body.innerText`)); err != nil {
		t.Fatal(err)
	}
	if scrollWidth, err = chromedp.Run(b.ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); err != nil {
		t.Fatal(err)
	}
	if shot, err = chromedp.Run(b.ctx, chromedp.FullScreenshot(100)); err != nil {
		t.Fatal(err)
	}
	return text, shot, scrollWidth
}

func (b *browser) consoleErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...)
}

func TestStatusPageInChromium(t *testing.T) {
	f := startFleet(t)
	opts := statuspage.DefaultOptions()
	opts.Client, opts.Platform = f.client, f.loop.Platform
	srv := httptest.NewServer(statuspage.Handler(opts))
	defer srv.Close()
	b := newBrowser(t)

	checkShot := func(t *testing.T, name string, shot []byte, scrollWidth int) {
		t.Helper()
		cfg, err := png.DecodeConfig(bytes.NewReader(shot))
		if err != nil {
			t.Fatalf("%s: the screenshot is not a PNG: %v", name, err)
		}
		if cfg.Width != phoneWidth || cfg.Height < phoneHeight/2 {
			t.Errorf("%s: screenshot %dx%d, want %d wide and a screenful tall", name, cfg.Width, cfg.Height, phoneWidth)
		}
		if scrollWidth > phoneWidth {
			t.Errorf("%s: the content is %dpx wide, more than the phone's %dpx: it scrolls sideways", name, scrollWidth, phoneWidth)
		}
		if len(shot) < 10_000 {
			t.Errorf("%s: a %d-byte screenshot is too small to show the page", name, len(shot))
		}
		if dir := os.Getenv("RAAS_SCREENSHOTS"); dir != "" {
			if err := os.WriteFile(filepath.Join(dir, name+".png"), shot, 0o644); err != nil {
				t.Error(err)
			}
		}
	}

	t.Run("the front page lists every tenant with its phase, quota, queue and waiting gangs", func(t *testing.T) {
		text, shot, width := b.visit(t, srv.URL+"/")
		for _, want := range []string{
			"4 tenant(s)", "data-sandbox", "ml-team-alpha", "vision-team", "vision-team-next",
			"Progressing", "Revision",
			"requests.cpu\n" + f.usedCPU + " of ",
			"GPUs allocated\n" + f.allocatedGPU + " of " + f.capabilityGPU + " capability",
			"1 PodGroup(s): " + f.pgReason,
			"1 PodGroup name(s) refused",
			"Platform GPUs (nvidia.com/gpu)", "Allocated by Volcano\t" + f.allocatedGPU,
		} {
			if !strings.Contains(text, want) {
				t.Errorf("the page does not show %q:\n%s", want, text)
			}
		}
		checkShot(t, "front", shot, width)
	})

	t.Run("a tenant's page shows Volcano's reason and the collision", func(t *testing.T) {
		text, shot, width := b.visit(t, srv.URL+"/status/tenants/ml-team-alpha")
		for _, want := range []string{
			"ml-team-alpha", "Progressing", "tenant-ml-team-alpha",
			f.podGroup + ": Pending, 5 pods at least. Volcano: " + f.pgReason + ": " + f.pgMessage,
			"Refused: " + f.collision,
			"1 PodGroup(s) mirrored",
		} {
			if !strings.Contains(text, want) {
				t.Errorf("the page does not show %q:\n%s", want, text)
			}
		}
		row := regexp.MustCompile(`requests\.nvidia\.com/gpu\s+` + regexp.QuoteMeta(f.usedGPU) + `\s+` + regexp.QuoteMeta(f.hardGPU) + `\n`)
		if !row.MatchString(text) {
			t.Errorf("the quota table does not show %s of %s GPUs used:\n%s", f.usedGPU, f.hardGPU, text)
		}
		if strings.Contains(text, "ray-serve-pg") {
			t.Error("a running PodGroup is listed as waiting")
		}
		checkShot(t, "tenant", shot, width)
	})

	t.Run("an unknown tenant is a 404 page", func(t *testing.T) {
		resp, err := http.Get(srv.URL + "/status/tenants/nobody")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("status %s, want 404", resp.Status)
		}
	})

	t.Run("no console errors", func(t *testing.T) {
		if errs := b.consoleErrors(); len(errs) > 0 {
			t.Errorf("console errors:\n%s", strings.Join(errs, "\n"))
		}
	})
}
