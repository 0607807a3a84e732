package trigger_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/raas-dev/raas/internal/trigger"
)

// Requests made while a pass runs collapse into one next pass.
func Example() {
	t := trigger.New()
	t.Trigger("webhook github push refs/heads/main")
	t.Trigger("poll")
	t.Trigger("poll")
	reasons, _ := t.Wait(context.Background())
	fmt.Println(reasons)
	// Output: [webhook github push refs/heads/main poll]
}

// A GitHub push signed with the shared secret fires the trigger; a forged one does not.
func ExampleWebhook() {
	t := trigger.New()
	opts := trigger.DefaultWebhookOptions()
	opts.GitHubSecret = "s3cret"
	opts.Branch = "main"
	opts.Logger = slog.New(slog.DiscardHandler)
	hook, err := trigger.NewWebhook(t, opts)
	if err != nil {
		panic(err)
	}
	body := `{"ref":"refs/heads/main","after":"4b825dc642cb6eb9a060e54bf8d69288fbee4904"}`
	for _, secret := range []string{"s3cret", "guess"} {
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(body))
		req := httptest.NewRequest(http.MethodPost, "/webhook", strings.NewReader(body))
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
		rec := httptest.NewRecorder()
		hook.ServeHTTP(rec, req)
		fmt.Println(secret, rec.Code, t.Pending())
	}
	reasons, _ := t.Wait(context.Background())
	fmt.Println(reasons)
	// Output:
	// s3cret 202 true
	// guess 403 true
	// [webhook github push refs/heads/main 4b825dc642cb]
}
