package source

import (
	"strings"
	"testing"
)

// FuzzRedactURL checks that the user information of a URL never survives redaction.
func FuzzRedactURL(f *testing.F) {
	f.Add("https", "user", "ghp_0123456789", "github.com/org/repo.git")
	f.Add("http", "", "tok", "127.0.0.1:8080/x")
	f.Add("ssh", "git", "pw", "host/repo")
	f.Fuzz(func(t *testing.T, scheme, user, password, rest string) {
		if scheme == "" || strings.ContainsAny(scheme+user+password, "/@ \t\r\n\v\f\u0085\u00a0") ||
			!isScheme(scheme) || password == "" {
			t.Skip()
		}
		in := scheme + "://" + user + ":" + password + "@" + rest
		got := RedactURL(in)
		if want := scheme + "://***@" + rest; got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	})
}

func isScheme(s string) bool {
	for i, r := range s {
		letter := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if !letter && (i == 0 || !(r >= '0' && r <= '9' || r == '+' || r == '.' || r == '-')) {
			return false
		}
	}
	return true
}

// FuzzRedactor checks that a registered secret never survives in any text.
func FuzzRedactor(f *testing.F) {
	f.Add("token", "error: token rejected for https://x:token@h/")
	f.Add("p@ss word", "p%40ss%20word p@ss+word")
	f.Fuzz(func(t *testing.T, secret, text string) {
		if secret == "" || strings.Contains(secret, "*") {
			t.Skip() // "***" itself could rebuild a secret made of stars
		}
		r := &redactor{}
		r.add(secret)
		if got := r.string(text); strings.Contains(got, secret) {
			t.Errorf("redacted %q to %q, which still holds %q", text, got, secret)
		}
	})
}
