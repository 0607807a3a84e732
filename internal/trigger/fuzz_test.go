package trigger

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

// FuzzValidSignature checks that only the HMAC of the body passes, in either hex case.
func FuzzValidSignature(f *testing.F) {
	f.Add([]byte("secret"), []byte(`{"ref":"refs/heads/main"}`), "sha256=00")
	f.Add([]byte("s"), []byte(""), "sha256=")
	f.Add([]byte("s"), []byte("x"), "sha1=abcd")
	f.Fuzz(func(t *testing.T, secret, body []byte, header string) {
		mac := hmac.New(sha256.New, secret)
		mac.Write(body)
		want := mac.Sum(nil)
		if !validSignature(secret, body, "sha256="+hex.EncodeToString(want)) ||
			!validSignature(secret, body, "sha256="+strings.ToUpper(hex.EncodeToString(want))) {
			t.Fatal("the correct signature was refused")
		}
		if validSignature(secret, body, header) {
			got, err := hex.DecodeString(strings.TrimPrefix(header, "sha256="))
			if !strings.HasPrefix(header, "sha256=") || err != nil || !bytes.Equal(got, want) {
				t.Errorf("header %q passed for body %q", header, body)
			}
		}
	})
}
