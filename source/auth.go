package source

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"

	"github.com/raas-dev/raas/internal/secret"
)

// Environment variables read by CredentialsFromEnv. A *_FILE variable names a file that
// holds the value (a mounted Secret); the file is read again on every fetch.
const (
	EnvGitUsername             = "RAAS_GIT_USERNAME"
	EnvGitPassword             = "RAAS_GIT_PASSWORD"
	EnvGitPasswordFile         = "RAAS_GIT_PASSWORD_FILE"
	EnvGitToken                = "RAAS_GIT_TOKEN"
	EnvGitTokenFile            = "RAAS_GIT_TOKEN_FILE"
	EnvGitSSHKeyFile           = "RAAS_GIT_SSH_KEY_FILE"
	EnvGitSSHKeyPassphrase     = "RAAS_GIT_SSH_KEY_PASSPHRASE"
	EnvGitSSHKeyPassphraseFile = "RAAS_GIT_SSH_KEY_PASSPHRASE_FILE"
	EnvGitKnownHostsFile       = "RAAS_GIT_KNOWN_HOSTS_FILE"
	// EnvGitInsecureIgnoreHostKey, set to "true", turns SSH host key checking off.
	EnvGitInsecureIgnoreHostKey = "RAAS_GIT_INSECURE_IGNORE_HOST_KEY"
)

// DefaultTokenUsername is the user name sent with a token over HTTPS when none is set.
// GitHub, GitLab and Gitea accept any non-empty name with a personal access token.
const DefaultTokenUsername = "git"

// Credentials for a Git remote. A value set directly wins over its file. Files are read
// on every fetch, so that a rotated Secret takes effect without a restart.
//
// Over HTTPS, a token is sent as the password of HTTP basic auth with Username (default
// DefaultTokenUsername); without a token, Username and Password are sent; without either,
// the user information of the URL is used. Over SSH, SSHKeyFile is required and the host
// key is checked against KnownHostsFile (or, when that is empty, $SSH_KNOWN_HOSTS,
// ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts). InsecureIgnoreHostKey turns that
// check off; it exists for tests and must be asked for explicitly.
type Credentials struct {
	Username             string
	Password             string
	PasswordFile         string
	Token                string
	TokenFile            string
	SSHKeyFile           string
	SSHKeyPassphrase     string
	SSHKeyPassphraseFile string
	KnownHostsFile       string
	// InsecureIgnoreHostKey accepts any SSH host key. Never set it in production.
	InsecureIgnoreHostKey bool
}

// CredentialsFromEnv reads Credentials from the RAAS_GIT_* environment variables.
func CredentialsFromEnv() Credentials { return credentialsFrom(os.Getenv) }

func credentialsFrom(getenv func(string) string) Credentials {
	insecure, _ := strconv.ParseBool(getenv(EnvGitInsecureIgnoreHostKey))
	return Credentials{
		Username:              getenv(EnvGitUsername),
		Password:              getenv(EnvGitPassword),
		PasswordFile:          getenv(EnvGitPasswordFile),
		Token:                 getenv(EnvGitToken),
		TokenFile:             getenv(EnvGitTokenFile),
		SSHKeyFile:            getenv(EnvGitSSHKeyFile),
		SSHKeyPassphrase:      getenv(EnvGitSSHKeyPassphrase),
		SSHKeyPassphraseFile:  getenv(EnvGitSSHKeyPassphraseFile),
		KnownHostsFile:        getenv(EnvGitKnownHostsFile),
		InsecureIgnoreHostKey: insecure,
	}
}

// remote is a parsed remote URL with its user information taken out.
type remote struct {
	url      string // without credentials: what go-git sees and stores
	protocol string // http, https, ssh, file
	user     string // from the URL
	password string // from the URL
	host     string // host:port, for known_hosts
}

func parseRemote(raw string) (*remote, error) {
	ep, err := transport.NewEndpoint(raw)
	if err != nil {
		// The parser's error quotes the URL: keep only the redacted text.
		return nil, errors.New(RedactURL(fmt.Sprintf("invalid Git URL %q: %v", raw, err)))
	}
	r := &remote{url: raw, protocol: ep.Protocol, user: ep.User, password: ep.Password}
	r.host = net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port))
	switch ep.Protocol {
	case "http", "https":
		ep.User, ep.Password = "", ""
		r.url = ep.String()
	case "ssh":
		if ep.Password != "" {
			return nil, fmt.Errorf("Git URL %s: passwords are not supported over SSH, use a key", RedactURL(raw))
		}
		if ep.Port == 0 {
			r.host = net.JoinHostPort(ep.Host, "22")
		}
	}
	return r, nil
}

// auth builds the go-git auth method for the remote and registers every secret it read
// with red, so that they can be removed from errors and logs.
func (c Credentials) auth(r *remote, red *redactor) (transport.AuthMethod, error) {
	switch r.protocol {
	case "http", "https":
		return c.httpAuth(r, red)
	case "ssh":
		return c.sshAuth(r, red)
	default:
		return nil, nil
	}
}

func (c Credentials) httpAuth(r *remote, red *redactor) (transport.AuthMethod, error) {
	red.add(r.user, r.password)
	token, err := secret.Read("token", c.Token, c.TokenFile)
	if err != nil {
		return nil, err
	}
	red.add(token)
	if token != "" {
		user := c.Username
		if user == "" {
			user = DefaultTokenUsername
		}
		return &http.BasicAuth{Username: user, Password: token}, nil
	}
	password, err := secret.Read("password", c.Password, c.PasswordFile)
	if err != nil {
		return nil, err
	}
	red.add(password)
	if c.Username != "" || password != "" {
		return &http.BasicAuth{Username: c.Username, Password: password}, nil
	}
	if r.user != "" || r.password != "" {
		return &http.BasicAuth{Username: r.user, Password: r.password}, nil
	}
	return nil, nil
}

func (c Credentials) sshAuth(r *remote, red *redactor) (transport.AuthMethod, error) {
	if c.SSHKeyFile == "" {
		return nil, fmt.Errorf("ssh: no private key file (set %s)", EnvGitSSHKeyFile)
	}
	pem, err := os.ReadFile(c.SSHKeyFile)
	if err != nil {
		return nil, fmt.Errorf("ssh key file: %w", err)
	}
	passphrase, err := secret.Read("ssh key passphrase", c.SSHKeyPassphrase, c.SSHKeyPassphraseFile)
	if err != nil {
		return nil, err
	}
	red.add(passphrase)
	user := r.user
	if user == "" {
		user = c.Username
	}
	if user == "" {
		user = "git"
	}
	keys, err := gitssh.NewPublicKeys(user, pem, passphrase)
	if err != nil {
		// x/crypto's parse errors say what failed and never quote the key.
		return nil, fmt.Errorf("ssh key file %s: %w", c.SSHKeyFile, err)
	}
	if c.InsecureIgnoreHostKey {
		keys.HostKeyCallback = ssh.InsecureIgnoreHostKey()
		return keys, nil
	}
	var files []string
	if c.KnownHostsFile != "" {
		files = []string{c.KnownHostsFile}
	}
	db, err := gitssh.NewKnownHostsDb(files...)
	if err != nil {
		return nil, fmt.Errorf("ssh known_hosts: %w", err)
	}
	keys.HostKeyCallback = db.HostKeyCallback()
	// Offer only the key types known_hosts holds for this host, or the server may pick
	// another type and the check fails although the host is known.
	keys.HostKeyAlgorithms = db.HostKeyAlgorithms(r.host)
	return keys, nil
}
