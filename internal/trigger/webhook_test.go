package trigger

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

const (
	githubSecret = "gh-secret-7c1e"
	gitlabToken  = "gl-token-2b9f"
)

const pushMain = `{"ref":"refs/heads/main","after":"0123456789abcdef0123456789abcdef01234567"}`

func sign(secret, body string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// webhookServer serves a Webhook on loopback and returns its trigger, its URL and its log.
func webhookServer(t *testing.T, mutate func(*WebhookOptions)) (*Trigger, string, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	opts := DefaultWebhookOptions()
	opts.GitHubSecret, opts.GitLabToken = githubSecret, gitlabToken
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	if mutate != nil {
		mutate(&opts)
	}
	tr := New()
	w, err := NewWebhook(tr, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(w)
	t.Cleanup(srv.Close)
	return tr, srv.URL + "/hooks", &logs
}

type request struct {
	method  string
	body    string
	headers map[string]string
	chunked bool // send without a Content-Length
}

func github(event, body string) request {
	return request{body: body, headers: map[string]string{
		"X-GitHub-Event": event, "X-Hub-Signature-256": sign(githubSecret, body), "X-GitHub-Delivery": "d-1",
	}}
}

func gitlab(event, body string) request {
	return request{body: body, headers: map[string]string{"X-Gitlab-Event": event, "X-Gitlab-Token": gitlabToken}}
}

func send(t *testing.T, url string, r request) int {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodPost
	}
	var body io.Reader = strings.NewReader(r.body)
	if r.chunked {
		body = io.MultiReader(body) // hides the length from net/http
	}
	req, err := http.NewRequest(r.method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range r.headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func TestWebhookTriggers(t *testing.T) {
	for name, r := range map[string]request{
		"a GitHub push":           github("push", pushMain),
		"a GitLab push":           gitlab("Push Hook", pushMain),
		"a GitHub non-push event": github("create", `{}`),
	} {
		t.Run("triggers once on "+name+", however many arrive at once", func(t *testing.T) {
			tr, url, _ := webhookServer(t, nil)
			var wg sync.WaitGroup
			codes := make(chan int, 20)
			for range 20 {
				wg.Go(func() { codes <- send(t, url, r) })
			}
			wg.Wait()
			close(codes)
			for code := range codes {
				if code != http.StatusAccepted {
					t.Errorf("status %d, want 202", code)
				}
			}
			reasons := wait(t, tr)
			if len(reasons) != 1 || !strings.HasPrefix(reasons[0], "webhook ") {
				t.Errorf("reasons %v", reasons)
			}
			noMore(t, tr)
		})
	}

	t.Run("names the provider, event, ref and commit in the reason", func(t *testing.T) {
		tr, url, _ := webhookServer(t, nil)
		send(t, url, github("push", pushMain))
		want := "webhook github push refs/heads/main 0123456789ab"
		if got := wait(t, tr); len(got) != 1 || got[0] != want {
			t.Errorf("reasons %v, want [%s]", got, want)
		}
	})

	t.Run("reads its secrets from files", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "gh"), []byte(githubSecret+"\n"), 0o600)
		os.WriteFile(filepath.Join(dir, "gl"), []byte(gitlabToken+"\n"), 0o600)
		tr, url, _ := webhookServer(t, func(o *WebhookOptions) {
			o.GitHubSecret, o.GitLabToken = "", ""
			o.GitHubSecretFile, o.GitLabTokenFile = filepath.Join(dir, "gh"), filepath.Join(dir, "gl")
		})
		if code := send(t, url, github("push", pushMain)); code != http.StatusAccepted {
			t.Errorf("GitHub: status %d, want 202", code)
		}
		if code := send(t, url, gitlab("Push Hook", pushMain)); code != http.StatusAccepted {
			t.Errorf("GitLab: status %d, want 202", code)
		}
		wait(t, tr)
	})

	t.Run("takes its secrets from the environment", func(t *testing.T) {
		t.Setenv(EnvGitHubSecret, "a")
		t.Setenv(EnvGitHubSecretFile, "/b")
		t.Setenv(EnvGitLabToken, "c")
		t.Setenv(EnvGitLabTokenFile, "/d")
		o := WebhookOptionsFromEnv()
		if o.GitHubSecret != "a" || o.GitHubSecretFile != "/b" || o.GitLabToken != "c" || o.GitLabTokenFile != "/d" || o.MaxBodyBytes != 1<<20 {
			t.Errorf("options %+v", o)
		}
	})
}

func TestWebhookRejects(t *testing.T) {
	big := `{"ref":"refs/heads/main","pad":"` + strings.Repeat("x", 1<<20) + `"}`
	wrongSig := github("push", pushMain)
	wrongSig.headers["X-Hub-Signature-256"] = sign("not-the-secret", pushMain)
	tampered := github("push", pushMain)
	tampered.body = strings.Replace(pushMain, "main", "evil", 1)
	sha1Sig := github("push", pushMain)
	sha1Sig.headers["X-Hub-Signature-256"] = "sha1=" + strings.TrimPrefix(sign(githubSecret, pushMain), "sha256=")
	notHex := github("push", pushMain)
	notHex.headers["X-Hub-Signature-256"] = "sha256=zz"
	unsigned := github("push", pushMain)
	delete(unsigned.headers, "X-Hub-Signature-256")
	wrongToken := gitlab("Push Hook", pushMain)
	wrongToken.headers["X-Gitlab-Token"] = gitlabToken + "x"
	get := github("push", pushMain)
	get.method = http.MethodGet
	bigSigned := github("push", big)
	bigChunked := github("push", big)
	bigChunked.chunked = true
	bigGitLab := gitlab("Push Hook", big)
	bigGitLab.chunked = true
	badJSON := github("push", "{not json")

	for name, c := range map[string]struct {
		r      request
		want   int
		mutate func(*WebhookOptions)
	}{
		"a wrong GitHub signature":                  {r: wrongSig, want: 403},
		"a body that does not match its signature":  {r: tampered, want: 403},
		"a signature that is not sha256":            {r: sha1Sig, want: 403},
		"a signature that is not hex":               {r: notHex, want: 403},
		"a request without signature or token":      {r: unsigned, want: 401},
		"a wrong GitLab token":                      {r: wrongToken, want: 403},
		"a GET":                                     {r: get, want: 405},
		"an oversized body":                         {r: bigSigned, want: 413},
		"an oversized body without Content-Length":  {r: bigChunked, want: 413},
		"an oversized GitLab body":                  {r: bigGitLab, want: 413},
		"a GitHub delivery when only GitLab is set": {r: github("push", pushMain), want: 403, mutate: func(o *WebhookOptions) { o.GitHubSecret = "" }},
		"a GitLab delivery when only GitHub is set": {r: gitlab("Push Hook", pushMain), want: 403, mutate: func(o *WebhookOptions) { o.GitLabToken = "" }},
		"a push whose body is not JSON":             {r: badJSON, want: 400},
	} {
		t.Run("rejects "+name+" and does not trigger", func(t *testing.T) {
			tr, url, logs := webhookServer(t, c.mutate)
			if code := send(t, url, c.r); code != c.want {
				t.Errorf("status %d, want %d", code, c.want)
			}
			noMore(t, tr)
			for _, s := range []string{githubSecret, gitlabToken, gitlabToken + "x", c.r.headers["X-Hub-Signature-256"]} {
				if s != "" && strings.Contains(logs.String(), s) {
					t.Errorf("the log shows %q:\n%s", s, logs.String())
				}
			}
		})
	}
}

func TestWebhookIgnores(t *testing.T) {
	onlyMain := func(o *WebhookOptions) { o.Branch = "main" }
	for name, c := range map[string]struct {
		r      request
		mutate func(*WebhookOptions)
	}{
		"a GitHub ping":                     {r: github("ping", `{"zen":"hi"}`)},
		"a push to another branch":          {r: github("push", `{"ref":"refs/heads/dev"}`), mutate: onlyMain},
		"a tag push when tracking a branch": {r: gitlab("Tag Push Hook", `{"ref":"refs/tags/v1"}`), mutate: onlyMain},
		"a non-push event when tracking":    {r: github("issues", `{}`), mutate: onlyMain},
	} {
		t.Run("acknowledges "+name+" without triggering", func(t *testing.T) {
			tr, url, _ := webhookServer(t, c.mutate)
			if code := send(t, url, c.r); code != http.StatusOK {
				t.Errorf("status %d, want 200", code)
			}
			noMore(t, tr)
		})
	}

	t.Run("triggers on a push to the tracked branch", func(t *testing.T) {
		tr, url, _ := webhookServer(t, onlyMain)
		if code := send(t, url, gitlab("Push Hook", pushMain)); code != http.StatusAccepted {
			t.Errorf("status %d, want 202", code)
		}
		wait(t, tr)
	})
}

func TestNewWebhookNeedsASecret(t *testing.T) {
	if _, err := NewWebhook(New(), DefaultWebhookOptions()); err == nil {
		t.Error("a webhook without any secret was created")
	}
	opts := DefaultWebhookOptions()
	opts.GitHubSecretFile = filepath.Join(t.TempDir(), "missing")
	if _, err := NewWebhook(New(), opts); err == nil {
		t.Error("a missing secret file was accepted")
	}
}
