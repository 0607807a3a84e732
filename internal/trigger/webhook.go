package trigger

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/raas-dev/raas/internal/secret"
)

// Environment variables read by WebhookOptionsFromEnv. A *_FILE variable names a file
// that holds the secret (a mounted Secret).
const (
	EnvGitHubSecret     = "RAAS_WEBHOOK_GITHUB_SECRET"
	EnvGitHubSecretFile = "RAAS_WEBHOOK_GITHUB_SECRET_FILE"
	EnvGitLabToken      = "RAAS_WEBHOOK_GITLAB_TOKEN"
	EnvGitLabTokenFile  = "RAAS_WEBHOOK_GITLAB_TOKEN_FILE"
)

// Headers the providers send.
const (
	headerGitHubSignature = "X-Hub-Signature-256"
	headerGitHubEvent     = "X-GitHub-Event"
	headerGitHubDelivery  = "X-GitHub-Delivery"
	headerGitLabToken     = "X-Gitlab-Token"
	headerGitLabEvent     = "X-Gitlab-Event"
)

// WebhookOptions configure a Webhook. At least one secret must be set. A secret set
// directly wins over its file; files are read once, by NewWebhook.
type WebhookOptions struct {
	// GitHubSecret is the webhook secret that signs GitHub deliveries (X-Hub-Signature-256).
	GitHubSecret     string
	GitHubSecretFile string
	// GitLabToken is the secret token GitLab sends in X-Gitlab-Token.
	GitLabToken     string
	GitLabTokenFile string
	// Branch, when set, limits triggers to push events for refs/heads/<Branch>. Other
	// authenticated events are acknowledged with 200 and ignored. When empty, every
	// authenticated event but GitHub's ping triggers.
	Branch string
	// MaxBodyBytes caps the request body; larger requests get 413.
	MaxBodyBytes int64
	// Logger receives a line per rejected or accepted request. Nil means slog.Default().
	Logger *slog.Logger
}

// DefaultWebhookOptions cap bodies at 1 MiB. They hold no secret.
func DefaultWebhookOptions() WebhookOptions {
	return WebhookOptions{MaxBodyBytes: 1 << 20}
}

// WebhookOptionsFromEnv returns DefaultWebhookOptions with the secrets named by the
// RAAS_WEBHOOK_* environment variables.
func WebhookOptionsFromEnv() WebhookOptions {
	o := DefaultWebhookOptions()
	o.GitHubSecret = os.Getenv(EnvGitHubSecret)
	o.GitHubSecretFile = os.Getenv(EnvGitHubSecretFile)
	o.GitLabToken = os.Getenv(EnvGitLabToken)
	o.GitLabTokenFile = os.Getenv(EnvGitLabTokenFile)
	return o
}

// Webhook is an http.Handler that receives GitHub and GitLab webhooks and fires a
// Trigger for each authenticated one. It answers:
//   - 405 to anything but POST;
//   - 401 to a request without a signature or token;
//   - 403 to a wrong signature or token, or a provider with no secret configured;
//   - 413 to a body over MaxBodyBytes;
//   - 400 to an authenticated push event whose body is not JSON;
//   - 200 to a ping or an event it ignores;
//   - 202 when it fired the trigger.
//
// Only the last fires the trigger.
type Webhook struct {
	trigger      *Trigger
	githubSecret []byte
	gitlabToken  [sha256.Size]byte // compared as digests, so the length does not leak
	gitlab       bool
	branch       string
	maxBody      int64
	log          *slog.Logger
}

var _ http.Handler = (*Webhook)(nil)

// NewWebhook reads the secrets and returns a Webhook that fires t.
func NewWebhook(t *Trigger, opts WebhookOptions) (*Webhook, error) {
	github, err := secret.Read("github secret", opts.GitHubSecret, opts.GitHubSecretFile)
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	gitlab, err := secret.Read("gitlab token", opts.GitLabToken, opts.GitLabTokenFile)
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	if github == "" && gitlab == "" {
		return nil, errors.New("webhook: no secret: set a GitHub secret or a GitLab token")
	}
	w := &Webhook{
		trigger:      t,
		githubSecret: []byte(github),
		gitlab:       gitlab != "",
		gitlabToken:  sha256.Sum256([]byte(gitlab)),
		branch:       opts.Branch,
		maxBody:      opts.MaxBodyBytes,
		log:          opts.Logger,
	}
	if w.maxBody <= 0 {
		w.maxBody = DefaultWebhookOptions().MaxBodyBytes
	}
	if w.log == nil {
		w.log = slog.Default()
	}
	return w, nil
}

// A delivery is an authenticated request.
type delivery struct {
	provider string // github or gitlab
	event    string
	id       string
}

func (w *Webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		rw.Header().Set("Allow", http.MethodPost)
		w.reject(rw, r, http.StatusMethodNotAllowed, "method "+r.Method)
		return
	}
	if r.ContentLength > w.maxBody {
		w.reject(rw, r, http.StatusRequestEntityTooLarge, "body too large")
		return
	}
	signature, token := r.Header.Get(headerGitHubSignature), r.Header.Get(headerGitLabToken)
	var d delivery
	switch {
	case signature != "":
		d = delivery{provider: "github", event: r.Header.Get(headerGitHubEvent), id: r.Header.Get(headerGitHubDelivery)}
	case token != "":
		d = delivery{provider: "gitlab", event: r.Header.Get(headerGitLabEvent)}
	default:
		w.reject(rw, r, http.StatusUnauthorized, "no signature or token")
		return
	}
	if d.provider == "gitlab" {
		// The token does not depend on the body: check it before reading any.
		sum := sha256.Sum256([]byte(token))
		if !w.gitlab || !hmac.Equal(sum[:], w.gitlabToken[:]) {
			w.reject(rw, r, http.StatusForbidden, "wrong gitlab token")
			return
		}
	} else if len(w.githubSecret) == 0 {
		w.reject(rw, r, http.StatusForbidden, "no github secret configured")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, w.maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			w.reject(rw, r, http.StatusRequestEntityTooLarge, "body too large")
		} else {
			w.reject(rw, r, http.StatusBadRequest, "cannot read body")
		}
		return
	}
	if d.provider == "github" && !validSignature(w.githubSecret, body, signature) {
		w.reject(rw, r, http.StatusForbidden, "wrong github signature")
		return
	}
	w.handle(rw, r, d, body)
}

// validSignature checks header, "sha256=<hex>", against the HMAC-SHA256 of body.
func validSignature(secret, body []byte, header string) bool {
	hexSum, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hmac.Equal(mac.Sum(nil), got)
}

// handle acts on an authenticated delivery.
func (w *Webhook) handle(rw http.ResponseWriter, r *http.Request, d delivery, body []byte) {
	if d.provider == "github" && d.event == "ping" {
		w.respond(rw, r, d, http.StatusOK, "pong")
		return
	}
	push := d.event == "push" || d.event == "Push Hook" || d.event == "Tag Push Hook"
	var payload struct {
		Ref   string `json:"ref"`
		After string `json:"after"`
	}
	if push {
		if err := json.Unmarshal(body, &payload); err != nil {
			w.respond(rw, r, d, http.StatusBadRequest, "push event body is not JSON")
			return
		}
	}
	if w.branch != "" && (!push || payload.Ref != "refs/heads/"+w.branch) {
		w.respond(rw, r, d, http.StatusOK, "ignored: not a push to "+w.branch)
		return
	}
	reason := "webhook " + d.provider + " " + d.event
	if payload.Ref != "" {
		reason += " " + payload.Ref
	}
	if len(payload.After) >= 12 {
		reason += " " + payload.After[:12]
	}
	w.trigger.Trigger(reason)
	w.respond(rw, r, d, http.StatusAccepted, "triggered")
}

func (w *Webhook) respond(rw http.ResponseWriter, r *http.Request, d delivery, code int, msg string) {
	w.log.Info("webhook", "provider", d.provider, "event", d.event, "delivery", d.id,
		"remote", r.RemoteAddr, "status", code, "result", msg)
	http.Error(rw, msg, code)
}

// reject answers a request that is not authenticated or not acceptable. Header values
// are never logged: they may hold a secret.
func (w *Webhook) reject(rw http.ResponseWriter, r *http.Request, code int, why string) {
	w.log.Warn("webhook rejected", "remote", r.RemoteAddr, "status", code, "reason", why)
	http.Error(rw, http.StatusText(code), code)
}
