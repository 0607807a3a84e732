package source

import (
	"errors"
	"net/url"
	"regexp"
	"strings"
)

// redacted stands in for every credential in logs and errors.
const redacted = "***"

// userinfo matches the user[:password]@ part of a URL with a scheme.
var userinfo = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.\-]*://)([^/@\s]*)@`)

// RedactURL replaces the user information of every URL in s with "***", so that
// "https://user:token@host/repo" becomes "https://***@host/repo". A plain user name in an
// ssh:// URL is kept: it is not a secret.
func RedactURL(s string) string {
	return userinfo.ReplaceAllStringFunc(s, func(m string) string {
		sub := userinfo.FindStringSubmatch(m)
		scheme, info := sub[1], sub[2]
		if strings.HasPrefix(strings.ToLower(scheme), "ssh") && !strings.Contains(info, ":") {
			return m
		}
		return scheme + redacted + "@"
	})
}

// A redactor removes URL user information and known secret values from text.
type redactor struct {
	secrets []string
}

// add registers secret values; empty ones are ignored. Their URL-escaped forms are
// registered too, because URLs in errors carry credentials escaped.
func (r *redactor) add(secrets ...string) {
	for _, s := range secrets {
		if s == "" {
			continue
		}
		r.secrets = append(r.secrets, s, url.PathEscape(s), url.QueryEscape(s))
	}
}

func (r *redactor) string(s string) string {
	s = RedactURL(s)
	for _, secret := range r.secrets {
		s = strings.ReplaceAll(s, secret, redacted)
	}
	return s
}

// error returns err with its text redacted. errors.Is still sees the original chain (so
// callers can test for context.Canceled or transport.ErrAuthenticationRequired), but
// nothing can unwrap the original text.
func (r *redactor) error(err error) error {
	if err == nil {
		return nil
	}
	return &redactedError{msg: r.string(err.Error()), err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }

// Is reports whether the original error matches target. There is deliberately no Unwrap:
// errors.As and errors.Unwrap would hand out the unredacted text.
func (e *redactedError) Is(target error) bool { return errors.Is(e.err, target) }
